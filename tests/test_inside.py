"""Looking inside a generator: layer captures, probes, strips and their command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.inside import capture, fit_probes, layer_modules, layer_strip, render_layers
from ganforge.nets import DataSpec, build_networks
from ganforge.sampling import LoadedGenerator, load_generator, noise

SPEC = DataSpec(channels=1, image_size=16)


def _loaded(network: str, width: int = 8) -> LoadedGenerator:
    g, _ = build_networks(network, SPEC, 8, width, 0)
    return LoadedGenerator(g.eval(), network, SPEC, [], 0, torch.device("cpu"))


@pytest.mark.parametrize(
    ("network", "names"),
    [("dcgan", ["project", "up1"]), ("mlp2014", ["hidden1", "hidden2"]),
     ("resnet", ["project", "stage1", "stage2"])],
)  # fmt: skip
def test_each_network_names_its_layers_and_they_are_captured(network, names):
    gen = _loaded(network)
    assert [n for n, _ in layer_modules(gen)] == names
    features, images = capture(gen, noise(5, gen.z_dim, 0))
    assert list(features) == names and images.shape == (5, 1, 16, 16)
    assert all(len(h) == 5 for h in features.values())
    # The captured images are the generator's own output.
    assert torch.equal(images, gen(noise(5, gen.z_dim, 0)).float())


def test_the_strip_has_a_row_per_layer_and_ends_with_the_image(uncond_run):
    gen = load_generator(uncond_run)
    probes = fit_probes(gen, n=60, steps=20)
    assert set(probes.errors) == {n for n, _ in layer_modules(gen)}
    assert all(np.isfinite(e) for e in probes.errors.values())
    picture, names = layer_strip(gen, 3, probes, maps=2)
    size = gen.spec.image_size
    assert names[-1] == "image" and len(names) == len(probes.errors) + 1
    assert picture.shape == ((size + 2) * len(names), (size + 2) * 3, 3)
    # The deepest row is the image itself.
    image = gen(noise(1, gen.z_dim, 3), gen.labels(1, None, 3))[0]
    expected = image.clamp(-1, 1).add(1).mul(127.5).round().byte()[0].numpy()
    last = picture[-(size + 2) : -2, :size, 0]
    assert np.array_equal(last, expected)


def test_render_layers_writes_strips_and_refuses_bad_input(tmp_path, uncond_run):
    report = render_layers(uncond_run, tmp_path / "out", [0, 5], maps=2, samples=40, steps=5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "layers.json", "layers_seed0.png", "layers_seed5.png"]  # fmt: skip
    assert json.loads((tmp_path / "out" / "layers.json").read_text()) == report
    with pytest.raises(GanforgeError, match="already exists"):
        render_layers(uncond_run, tmp_path / "out", [0])
    with pytest.raises(GanforgeError, match="seed"):
        render_layers(uncond_run, tmp_path / "other", [-1])
    with pytest.raises(GanforgeError, match="memory"):
        render_layers(uncond_run, tmp_path / "other", [0], samples=10**12)
    with pytest.raises(GanforgeError, match="class"):
        render_layers(uncond_run, tmp_path / "other", [0], class_label=3)
    with pytest.raises(GanforgeError):
        render_layers(tmp_path / "nothing", tmp_path / "other", [0])
    assert not (tmp_path / "other").exists()


def test_inside_layers_from_the_command_line(tmp_path, uncond_run, cli_env, cli_ok):
    proc = cli_ok(["inside", uncond_run, "layers", "--seed", "1", "--samples", "40", "--out",
                   tmp_path / "o"], cli_env, tmp_path)  # fmt: skip
    assert "probe MSE" in proc.stdout and (tmp_path / "o" / "layers_seed1.png").exists()
