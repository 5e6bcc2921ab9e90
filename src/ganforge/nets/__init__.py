"""Generator/discriminator families, registered by name.

Every generator maps ``z`` of shape (N, z_dim) and, when conditional, integer labels (N,)
to ``float32`` images (N, C, H, W) in [-1, 1]; every discriminator maps such images (and
labels) to one logit per image, shape (N,). Generators expose ``z_dim`` and ``num_classes``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.nets import dcgan, mlp2014, resnet
from ganforge.nets.spec import DataSpec, NetworkFamily
from ganforge.registry import Registry
from ganforge.resources import require_memory

NETWORKS: Registry[NetworkFamily] = Registry("network")

# The paper trained these nets with SGD (rate 0.1, momentum 0.5 -> 0.7) under max-norm weight
# constraints. Plain SGD here diverged (rate 0.1) or collapsed to one blob (rate 0.02) within
# 1,500 steps on MNIST. Adam at the DCGAN paper's 2e-4 still had only 3 classes after 1,000
# steps (batch 100, FID 636); at 1e-3 with beta2 0.99 it had 9 (FID 197) and all 10 by 2,000
# steps (benchmarks/README.md). SGD stays available with --optimizer sgd.
_MLP_OPTIM = {"optimizer": "adam", "lr": 1e-3, "beta1": 0.5, "beta2": 0.99}
# Radford et al. used lr 2e-4, betas (0.5, 0.999); a higher rate with beta2 0.99 reaches
# recognizable MNIST digits in fewer steps on a CPU budget (benchmarks/README.md).
_DCGAN_OPTIM = {"optimizer": "adam", "lr": 1e-3, "beta1": 0.5, "beta2": 0.99}

NETWORKS.register("mlp2014")(
    NetworkFamily(
        mlp2014.build,
        False,
        100,
        1200,
        _MLP_OPTIM,
        "2014 paper: MLP G, maxout D",
        mlp2014.init_output_bias,
    )
)
NETWORKS.register("mlp2014-cond")(
    NetworkFamily(
        mlp2014.build,
        True,
        100,
        1200,
        _MLP_OPTIM,
        "class-conditional mlp2014",
        mlp2014.init_output_bias,
    )
)
NETWORKS.register("dcgan")(
    NetworkFamily(dcgan.build, False, 64, 32, _DCGAN_OPTIM, "DCGAN, sized from the data")
)
NETWORKS.register("dcgan-cond")(
    NetworkFamily(dcgan.build, True, 64, 32, _DCGAN_OPTIM, "class-conditional DCGAN")
)
# R3GAN's game (Huang et al., 2024): the relativistic pairing loss with R1 and R2 at equal
# weight, Adam with beta1 = 0. The penalties run every 4th step (lazy, scaled by 4).
_R3GAN_OPTIM = {"optimizer": "adam", "lr": 1e-3, "beta1": 0.0, "beta2": 0.99}
_R3GAN_LOSS = {"name": "relativistic", "r1": 1.0, "r1_every": 4, "r2": 1.0, "r2_every": 4}
NETWORKS.register("resnet")(
    NetworkFamily(
        resnet.build,
        False,
        64,
        32,
        _R3GAN_OPTIM,
        "R3GAN-style residual nets",
        recipe={"loss": _R3GAN_LOSS},
    )  # fmt: skip
)
NETWORKS.register("resnet-cond")(
    NetworkFamily(
        resnet.build,
        True,
        64,
        32,
        _R3GAN_OPTIM,
        "class-conditional resnet",
        recipe={"loss": _R3GAN_LOSS},
    )  # fmt: skip
)
# The default of `ganforge train`: what reached quality fastest on 2 CPU cores
# (benchmarks/README.md, issue 19): DCGAN's networks conditioned on k-means clusters of the
# data (no labels read), trained with R3GAN's loss and penalties. Screened at 60 s of
# training: 200 clusters beat 100 and 500; gamma 0.1 beat 0, 0.01 and 1.
NETWORKS.register("dcgan-clusters")(
    NetworkFamily(
        dcgan.build,
        False,
        64,
        32,
        _R3GAN_OPTIM,
        "DCGAN on 200 k-means clusters, R3GAN loss",
        recipe={
            "model": {"clusters": 200},
            "loss": {**_R3GAN_LOSS, "r1": 0.1, "r2": 0.1},
            "train": {"steps": 4000},
        },
    )
)

# Differentially private training (Bie et al., 2023, "Private GANs, revisited"): only the
# discriminator sees private data, trained with DP-SGD, which needs every image's gradient
# on its own (no batch norm) and a loss that is a sum over images (no R1, no pairing).
# Their MNIST setting: non-saturating loss, Adam 2e-4 with betas (0.5, 0.999), expected
# batch 128 and many discriminator steps per generator step.
NETWORKS.register("dcgan-cond-dp")(
    NetworkFamily(
        dcgan.build_private,
        True,
        64,
        32,
        {"optimizer": "adam", "lr": 2e-4, "beta1": 0.5, "beta2": 0.999},
        "class-conditional DCGAN for --private (no batch norm in D)",
        recipe={"train": {"batch_size": 128, "k": 50, "steps": 2000, "ema_decay": 0.999}},
    )
)


def build_networks(
    name: str,
    spec: DataSpec,
    z_dim: int | None = None,
    width: int | None = None,
    clusters: int = 0,
) -> tuple[nn.Module, nn.Module]:
    """Build ``(generator, discriminator)`` of family ``name`` for data of shape ``spec``.

    ``clusters`` > 0 (unconditional families only): both networks are conditioned on that
    many clusters of the data instead of class labels, and the generator keeps the clusters'
    shares of the data in its buffer ``label_shares``, which :func:`draw_labels` samples."""
    family = NETWORKS.get(name)
    num_classes = spec.num_classes if family.conditional else 0
    if family.conditional and num_classes < 2:
        raise GanforgeError(f"network {name!r} is conditional but the dataset has no class labels")
    check_clusters(name, clusters)
    z_dim, width = z_dim or family.z_dim, width or family.width
    weights, _ = footprint(name, spec, z_dim, width)
    # float32 weights, their gradients, two Adam moments and the generator's average.
    require_memory(5 * 4 * weights, _describe(name, weights, width, z_dim, spec))
    if not clusters:
        return family.build(spec, z_dim, width, num_classes)
    g, d = family.build(spec, z_dim, width, clusters)
    g.register_buffer("label_shares", torch.full((clusters,), 1.0 / clusters))
    return g, d


def check_clusters(name: str, clusters: int, key: str = "clusters") -> None:
    """Refuse a cluster count other than 0 (off) or at least 2, or clusters on a network
    family that is conditioned on the data's labels already."""
    if clusters and (NETWORKS.get(name).conditional or clusters < 2):
        raise GanforgeError(
            f"{key} must be 0 (off) or at least 2 with an unconditional network; "
            f"got {clusters} with {name!r}"
        )


def draw_labels(
    generator: nn.Module, n: int, seed: int | None = None, device: torch.device | str = "cpu"
) -> Tensor | None:
    """Labels for ``n`` samples: None for an unconditional generator; drawn by the data's
    cluster shares for a cluster-conditioned one (seeded when ``seed`` is given); else
    cycling through the classes, an equal share of each."""
    if not generator.num_classes:
        return None
    shares = getattr(generator, "label_shares", None)
    if shares is None:
        return torch.arange(n, device=device) % generator.num_classes
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.multinomial(shares.double().cpu(), n, replacement=True, generator=rng).to(device)


def _describe(name: str, weights: int, width: int, z_dim: int, spec: DataSpec) -> str:
    return (
        f"network {name!r} ({weights:,} weights at width {width}, noise size {z_dim}, "
        f"{spec.image_size}px images)"
    )


def footprint(name: str, spec: DataSpec, z_dim: int, width: int) -> tuple[int, int]:
    """(weights, activation values per image through G then D) of family ``name``, from
    shapes alone: the networks are built and run on the meta device, allocating nothing."""
    family = NETWORKS.get(name)
    num_classes = spec.num_classes if family.conditional else 0
    values: list[int] = []

    def count(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            values.append(output.numel())

    with torch.device("meta"):
        g, d = family.build(spec, z_dim, width, num_classes)
        leaves = [m for net in (g, d) for m in net.modules() if not list(m.children())]
        hooks = [m.register_forward_hook(count) for m in leaves]
        y = torch.zeros(1, dtype=torch.long) if num_classes else None
        with torch.no_grad():
            d(g(torch.zeros(1, z_dim), y), y)
        for hook in hooks:
            hook.remove()
    return sum(p.numel() for net in (g, d) for p in net.parameters()), sum(values)


def check_training_memory(
    name: str, spec: DataSpec, z_dim: int, width: int, batch: int, images: int
) -> None:
    """Refuse a GAN whose weights, optimizer state, data and one step's activations
    (forward and backward, both players) cannot fit in memory."""
    weights, activations = footprint(name, spec, z_dim, width)
    data = images * spec.channels * spec.image_size**2  # uint8, held whole
    needed = 5 * 4 * weights + data + 3 * 4 * activations * batch
    require_memory(
        needed, f"training {_describe(name, weights, width, z_dim, spec)} at batch {batch}"
    )


@torch.inference_mode()
def generate(
    generator: nn.Module, z: Tensor, labels: Tensor | None = None, batch: int = 500
) -> Tensor:
    """Run ``generator`` over ``z`` (and ``labels``) in batches, on the generator's device;
    images come back as float32 on the CPU. Memory stays bounded for large requests."""
    device = next(generator.parameters()).device
    out = []
    for i in range(0, len(z), batch):
        y = None if labels is None else labels[i : i + batch].to(device)
        out.append(generator(z[i : i + batch].to(device), y).float().cpu())
    return torch.cat(out)


__all__ = [
    "NETWORKS",
    "DataSpec",
    "NetworkFamily",
    "build_networks",
    "check_clusters",
    "draw_labels",
    "generate",
]
