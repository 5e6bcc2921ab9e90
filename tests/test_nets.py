"""Network families: shapes, output range, conditioning, and the errors for impossible specs."""

from __future__ import annotations

import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.nets import NETWORKS, DataSpec, build_networks

N = 4
Z = 16
ALL_FAMILIES = ("mlp2014", "mlp2014-cond", "dcgan", "dcgan-cond", "resnet", "resnet-cond")


def _build(name: str, channels: int, size: int, classes: int = 10, width: int = 8):
    conditional = NETWORKS.get(name).conditional
    spec = DataSpec(channels, size, classes if conditional else 0)
    return build_networks(name, spec, z_dim=Z, width=width)


def _labels(g: torch.nn.Module) -> torch.Tensor | None:
    return torch.arange(N) % g.num_classes if g.num_classes else None


def test_all_families_are_registered():
    names = {"mlp2014", "mlp2014-cond", "dcgan", "dcgan-cond", "resnet", "resnet-cond"}
    assert names <= set(NETWORKS.names())


@pytest.mark.parametrize("name", ["dcgan", "dcgan-cond"])
@pytest.mark.parametrize("size", [8, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(name: str, size: int, channels: int):
    torch.manual_seed(0)
    g, d = _build(name, channels, size)
    y = _labels(g)
    assert g.z_dim == Z
    assert g.num_classes == (10 if name.endswith("-cond") else 0)
    x = g(torch.randn(N, Z), y)
    assert x.shape == (N, channels, size, size)
    assert x.dtype == torch.float32
    logits = d(x, y)
    assert logits.shape == (N,)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["resnet", "resnet-cond"])
@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_resnet_shapes(name: str, size: int, channels: int):
    torch.manual_seed(0)
    g, d = _build(name, channels, size)
    y = _labels(g)
    assert g.num_classes == (10 if name.endswith("-cond") else 0)
    x = g(torch.randn(N, Z), y)
    assert x.shape == (N, channels, size, size) and x.dtype == torch.float32
    logits = d(x, y)
    assert logits.shape == (N,) and torch.isfinite(logits).all()


def test_resnet_has_no_normalization_layers_and_each_image_is_its_own():
    """No batch statistics: an image's output does not depend on the rest of its batch."""
    torch.manual_seed(0)
    g, d = _build("resnet", 1, 28)
    norms = (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for net in (g, d) for m in net.modules())
    z = torch.randn(N, Z)
    with torch.no_grad():
        torch.testing.assert_close(g(z)[:1], g(z[:1]))
        x = g(z)
        torch.testing.assert_close(d(x)[:1], d(x[:1]))


def test_resnet_blocks_start_as_the_identity_and_learn():
    """Fix-up initialization: the last layer of every residual branch is zero, so each block
    passes its input through unchanged; the first gradient step moves that layer."""
    from ganforge.nets.resnet import ResidualBlock

    torch.manual_seed(0)
    g, d = _build("resnet", 1, 28, width=16)
    blocks = [m for net in (g, d) for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) >= 4
    x = torch.randn(2, blocks[0].expand.in_channels, 7, 7)
    torch.testing.assert_close(blocks[0](x), x)
    d(g(torch.randn(N, Z))).mean().backward()
    for block in blocks:
        assert block.reduce.weight.grad.abs().sum() > 0


def test_resnet_channels_halve_per_doubling_from_four_times_the_width():
    from ganforge.nets.resnet import stage_channels

    assert stage_channels(28, 16) == (7, [64, 32, 16])
    assert stage_channels(64, 8) == (4, [32, 32, 32, 16, 8])


@pytest.mark.parametrize("name", ["mlp2014", "mlp2014-cond"])
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 32), (3, 64)])
def test_mlp_shapes(name: str, channels: int, size: int):
    torch.manual_seed(0)
    g, d = _build(name, channels, size, width=40)
    y = _labels(g)
    x = g(torch.randn(N, Z), y)
    assert x.shape == (N, channels, size, size)
    assert d(x, y).shape == (N,)


@pytest.mark.parametrize("name", [*ALL_FAMILIES])
def test_discriminator_returns_one_logit_per_image_even_for_one_image(name: str):
    torch.manual_seed(0)
    g, d = _build(name, 1, 8)
    g.eval()
    d.eval()
    y = torch.tensor([3]) if g.num_classes else None
    x = g(torch.randn(1, Z), y)
    assert x.shape == (1, 1, 8, 8)
    assert d(x, y).shape == (1,)


@pytest.mark.parametrize("name", [*ALL_FAMILIES])
def test_generator_output_is_within_minus_one_and_one(name: str):
    torch.manual_seed(0)
    g, _ = _build(name, 3, 8)
    z = torch.randn(64, Z)
    y = torch.arange(64) % 10 if g.num_classes else None
    with torch.no_grad():
        x = g(z, y)
        assert x.min() >= -1.0 and x.max() <= 1.0
        # Huge weights drive the output non-linearity into saturation at both ends.
        for p in g.parameters():
            p.mul_(50.0)
        x = g(z, y)
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x.min() < -0.99 and x.max() > 0.99  # the whole range is reachable


@pytest.mark.parametrize("name", ["mlp2014-cond", "dcgan-cond", "resnet-cond"])
def test_conditional_generator_output_depends_on_the_label(name: str):
    torch.manual_seed(0)
    g, _ = _build(name, 1, 8)
    g.eval()  # batch norm on running statistics: each image depends on its own inputs only
    z = torch.randn(1, Z).repeat(10, 1)
    with torch.no_grad():
        x = g(z, torch.arange(10))
    for label in range(1, 10):
        assert not torch.allclose(x[0], x[label]), f"class 0 and class {label} give one image"
    with torch.no_grad():
        again = g(z[:1], torch.tensor([4]))
    torch.testing.assert_close(again[0], x[4])


@pytest.mark.parametrize("name", ["mlp2014-cond", "dcgan-cond", "resnet-cond"])
def test_conditional_discriminator_output_depends_on_the_label(name: str):
    torch.manual_seed(0)
    _, d = _build(name, 1, 8)
    d.eval()
    x = torch.rand(1, 1, 8, 8).mul(2).sub(1).repeat(2, 1, 1, 1)
    with torch.no_grad():
        logits = d(x, torch.tensor([0, 7]))
    assert logits[0] != logits[1]


@pytest.mark.parametrize("name", ["mlp2014-cond", "dcgan-cond", "resnet-cond"])
@pytest.mark.parametrize("classes", [0, 1])
def test_conditional_network_on_unlabelled_data_is_an_error(name: str, classes: int):
    with pytest.raises(GanforgeError, match="conditional"):
        build_networks(name, DataSpec(1, 28, classes))


@pytest.mark.parametrize("name", ["mlp2014", "dcgan", "resnet"])
def test_unconditional_network_ignores_labels_in_the_data(name: str):
    g, d = build_networks(name, DataSpec(1, 8, 10), z_dim=Z, width=8)
    assert g.num_classes == 0
    assert d(g(torch.randn(N, Z))).shape == (N,)


@pytest.mark.parametrize("name", ["dcgan", "dcgan-cond", "resnet", "resnet-cond"])
@pytest.mark.parametrize("size", [27, 25, 6, 4])
def test_dcgan_rejects_sizes_it_cannot_build(name: str, size: int):
    with pytest.raises(GanforgeError, match=str(size)):
        build_networks(name, DataSpec(1, size, 10), z_dim=Z, width=8)


def test_unknown_network_name_lists_the_known_ones():
    with pytest.raises(GanforgeError, match="unknown network 'stylegan'") as err:
        build_networks("stylegan", DataSpec(1, 28, 10))
    assert "dcgan" in str(err.value) and "mlp2014" in str(err.value)


def test_networks_are_trainable_end_to_end():
    """Gradients reach every generator parameter through the discriminator."""
    torch.manual_seed(0)
    g, d = _build("dcgan-cond", 1, 8)
    y = _labels(g)
    d(g(torch.randn(N, Z), y), y).sum().backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
