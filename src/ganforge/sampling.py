"""Drawing images from a trained generator: samples and latent walks.

Any run folder or checkpoint file works; the EMA generator is used. Outputs are float32
NCHW in [-1, 1]; :mod:`ganforge.viz` writes them to files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.io.rundir import require_kind
from ganforge.nets import DataSpec, build_networks, draw_labels, generate
from ganforge.resources import require_image_memory
from ganforge.train.checkpoint import load_checkpoint, load_state
from ganforge.train.device import pick_device


@dataclass
class LoadedGenerator:
    """The EMA generator of a checkpoint, in eval mode, with what it was trained on."""

    generator: nn.Module
    network: str
    spec: DataSpec
    class_names: list[str]
    step: int
    device: torch.device

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def class_conditional(self) -> bool:
        """Conditioned on the data's classes (not on k-means clusters of it)."""
        return self.num_classes > 0 and getattr(self.generator, "label_shares", None) is None

    def labels(self, n: int, class_label: int | None, seed: int | None = None) -> Tensor | None:
        """Labels for ``n`` images: all ``class_label``; else cycling through the classes,
        or drawn by their share of the data for a cluster-conditioned generator."""
        if class_label is not None:
            if not self.num_classes:
                raise GanforgeError(f"--class needs a conditional network; {self.network!r} is not")
            if not 0 <= class_label < self.num_classes:
                raise GanforgeError(
                    f"class {class_label} is out of range: this model has classes "
                    f"0..{self.num_classes - 1}"
                )
            return torch.full((n,), class_label, dtype=torch.long, device=self.device)
        return draw_labels(self.generator, n, seed, self.device)

    def __call__(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return generate(self.generator, z, labels)


def load_generator(path: str | Path, device: str = "cpu") -> LoadedGenerator:
    """Load the EMA generator from a run folder or checkpoint file."""
    if Path(path).is_dir():
        require_kind(path, "gan")
    return generator_from_state(load_checkpoint(path, kind="gan"), path, device)


def load_critic(path: str | Path, device: str = "cpu") -> tuple[LoadedGenerator, nn.Module]:
    """The EMA generator and the trained discriminator (eval mode, no gradients to its
    weights) of a run folder or checkpoint file."""
    if Path(path).is_dir():
        require_kind(path, "gan")
    return critic_from_state(load_checkpoint(path, kind="gan"), path, device)


def critic_from_state(
    state: dict, path: str | Path, device: str = "cpu"
) -> tuple[LoadedGenerator, nn.Module]:
    """:func:`load_critic` for an already loaded GAN checkpoint."""
    gen = generator_from_state(state, path, device)
    _, d = networks_from_state(state, path)
    try:
        weights = state["players"]["discriminator"]
    except (KeyError, TypeError) as err:
        raise GanforgeError(f"{path} holds an incomplete GAN checkpoint ({err})") from None
    load_state(d, weights, "discriminator", gen.network)
    return gen, d.to(gen.device).eval().requires_grad_(False)


def networks_from_state(state: dict, path: str | Path) -> tuple[nn.Module, nn.Module]:
    """``(generator, discriminator)`` as a GAN checkpoint's config builds them (untrained);
    ``path`` names the checkpoint in errors."""
    try:
        cfg, recipe = state["config"], state["recipe"]
        network = cfg["model"]["network"]
        spec = DataSpec(**recipe["data_spec"])
        z_dim, width = cfg["model"]["z_dim"], cfg["model"]["width"]
        clusters = cfg["model"].get("clusters") or 0  # absent before clusters existed
    except (KeyError, TypeError, AttributeError) as err:
        raise GanforgeError(f"{path} holds an incomplete GAN checkpoint ({err})") from None
    if not isinstance(clusters, int) or isinstance(clusters, bool) or clusters < 0:
        raise GanforgeError(f"{path} holds an invalid cluster count {clusters!r}")
    return build_networks(network, spec, z_dim, width, clusters)


def generator_from_state(state: dict, path: str | Path, device: str = "cpu") -> LoadedGenerator:
    """The EMA generator of an already loaded GAN checkpoint."""
    g, _ = networks_from_state(state, path)
    network = state["config"]["model"]["network"]
    try:
        ema = state["ema"]["generator"]
    except (KeyError, TypeError) as err:
        raise GanforgeError(f"{path} holds an incomplete GAN checkpoint ({err})") from None
    load_state(g, ema, "EMA generator", network)
    dev = pick_device(device)
    spec = DataSpec(**state["recipe"]["data_spec"])
    return LoadedGenerator(
        g.to(dev).eval(), network, spec, state["recipe"]["class_names"], state["step"], dev
    )


SEED_LIMIT = 2**63  # what a torch generator takes


def check_seed(seed: int, what: str = "--seed") -> int:
    if not 0 <= seed < SEED_LIMIT:
        raise GanforgeError(f"{what} must be in [0, 2^63), got {seed}")
    return seed


def noise(n: int, z_dim: int, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(check_seed(seed))
    return torch.randn(n, z_dim, generator=generator)


def sample(
    gen: LoadedGenerator, n: int, seed: int = 0, class_label: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """``n`` images (float NCHW in [-1, 1]) and their labels (None if unconditional)."""
    if n < 1:
        raise GanforgeError(f"the number of images must be at least 1, got {n}")
    require_image_memory(n, gen.spec.channels, gen.spec.image_size, gen.z_dim, f"{n:,} images")
    labels = gen.labels(n, class_label, seed)
    images = gen(noise(n, gen.z_dim, seed), labels)
    return images, None if labels is None else labels.cpu()


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between the rows ``a`` and ``b`` at fractions ``t``; Gaussian
    noise lives near a sphere, so this keeps intermediate points typical."""
    a_n, b_n = a / a.norm(), b / b.norm()
    omega = torch.arccos((a_n * b_n).sum().clamp(-1, 1))
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t[:, None])
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so)[:, None] * a + (torch.sin(t * omega) / so)[:, None] * b


def interpolate(
    gen: LoadedGenerator,
    seed_a: int,
    seed_b: int,
    steps: int = 10,
    class_label: int | None = None,
    spherical: bool = True,
) -> Tensor:
    """Images along the latent path from seed ``seed_a``'s noise to ``seed_b``'s."""
    if steps < 2:
        raise GanforgeError(f"an interpolation needs at least 2 steps, got {steps}")
    spec = gen.spec
    require_image_memory(steps, spec.channels, spec.image_size, gen.z_dim, f"{steps:,} images")
    a, b = noise(1, gen.z_dim, seed_a)[0], noise(1, gen.z_dim, seed_b)[0]
    t = torch.linspace(0, 1, steps)
    z = slerp(a, b, t) if spherical else torch.lerp(a, b, t[:, None])
    return gen(
        z, gen.labels(steps, class_label) if class_label is not None else _same_label(gen, steps)
    )


def _same_label(gen: LoadedGenerator, n: int) -> Tensor | None:
    # A conditional walk without --class stays within class 0 so that only z changes.
    return gen.labels(n, 0) if gen.num_classes else None


def generator_id(gen: LoadedGenerator) -> str:
    """SHA-256 (hex) of the generator's weights, names in order: the same weights give the
    same id on any machine, so a signed image names exactly what made it."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(gen.generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()
