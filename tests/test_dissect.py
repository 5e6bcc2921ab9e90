"""Unit dissection, the paintbrush, dreams and latent directions."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.inside import dissect_run, dream_run
from ganforge.inside.concepts import digit_concepts
from ganforge.inside.directions import class_directions, sefa_directions, walk
from ganforge.inside.dissect import dissect
from ganforge.inside.dream import dream
from ganforge.inside.paintbrush import box_mask, paint
from ganforge.inside.units import Edit, render, unit_levels
from ganforge.nets import DataSpec, build_networks
from ganforge.sampling import LoadedGenerator, load_critic, noise

BAR_UNIT = 0


class KnownUnits(nn.Module):
    """A generator whose units are known: unit 0 draws a wide horizontal bar at the top
    (two 7x7 cells high, five wide, 4x upsampled to 28x28); units 1..8 each draw one small
    square blob, apart from each other and from the bar, so none of them makes a bar.
    Unit u is on when z_u > 0, as strongly as z_u."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim, self.num_classes = 9, 0
        patterns = torch.zeros(9, 7, 7)
        patterns[BAR_UNIT, 0:2, 1:6] = 1
        for i, (r, c) in enumerate([(3, 0), (3, 2), (3, 4), (3, 6), (5, 0), (5, 2), (5, 4),
                                    (5, 6)]):  # fmt: skip
            patterns[1 + i, r, c] = 1
        self.register_buffer("patterns", patterns)
        self.scale = nn.Parameter(torch.ones(()))  # the loader asks for a parameter's device
        self.paint = nn.Identity()  # the layer the hooks see

    def forward(self, z, y=None):
        h = self.paint(F.relu(z[:, :9, None, None]) * self.patterns * self.scale)
        ink = F.interpolate(h.sum(1, keepdim=True).clamp(0, 1), scale_factor=4)
        return ink * 2 - 1

    def layers(self):
        return [("paint", self.paint)]


def _known() -> LoadedGenerator:
    return LoadedGenerator(
        KnownUnits().eval(), "known", DataSpec(1, 28), [], 0, torch.device("cpu")
    )


def test_the_unit_that_draws_the_bar_ranks_first_and_its_ablation_removes_it():
    result = dissect(_known(), "paint", samples=400, k=1, random_draws=20, ablation_samples=300)
    report = result.report()
    assert report["best_per_concept"]["bar"]["unit"] == BAR_UNIT
    assert report["best_per_concept"]["top bar"]["unit"] == BAR_UNIT
    assert report["best_per_concept"]["bar"]["iou"] > 0.5
    # No blob unit agrees with the bar.
    bar = result.concepts.index("bar")
    assert result.iou[1:, bar].max() < 0.05
    row = next(r for r in report["ablation"] if r["concept"] == "bar")
    assert row["units"] == [BAR_UNIT]
    assert row["effect_top_k"] > 0.95  # the bar's ink is gone
    # One random unit in nine is the bar unit: about 1/9 on average, far below.
    assert row["effect_random_mean"] < 0.35
    assert row["effect_top_k"] - row["effect_random_mean"] > 0.6


def test_a_class_no_sample_was_read_as_is_reported_not_a_crash():
    from ganforge.inside.dissect import ablation_plot, ablation_table

    result = dissect(_known(), "paint", samples=100, k=1, random_draws=2, ablation_samples=20)
    report = result.report()
    missing = [r for r in report["ablation"] if r["effect_top_k"] is None]
    assert missing, "expected a class none of 20 blob images is read as"
    assert all(r["concept"].startswith("class ") for r in missing)
    table = ablation_table(report)
    assert "n/a" in table and len(table.splitlines()) == len(report["ablation"]) + 1
    assert ablation_plot(result).startswith(b"\x89PNG")
    json.dumps(report, allow_nan=False)  # valid JSON: no NaN


def test_concepts_on_hand_made_digits():
    image = -torch.ones(1, 1, 28, 28)
    image[0, 0, 4:6, 4:24] = 1  # a top bar
    image[0, 0, 4:24, 13:15] = 1  # a stem
    image[0, 0, 16, 4:10] = 1  # short: neither
    c = digit_concepts(image)
    assert c["stroke"].sum() == 40 + 40 - 4 + 6
    assert c["bar"][0, 4:6, 4:24].all() and not c["bar"][0, 16].any()
    assert c["stem"][0, 4:24, 13:15].all() and not c["stem"][0, 16, 4:10].any()
    assert c["top bar"][0, 4:6, 4:24].all() and not c["hole"].any()
    ring = -torch.ones(1, 1, 28, 28)
    ring[0, 0, 8:20, 8:20] = 1
    ring[0, 0, 10:18, 10:18] = -1
    c = digit_concepts(ring)
    assert c["hole"].sum() == 64 and c["hole"][0, 10:18, 10:18].all()
    assert c["loop"].sum() == c["stroke"].sum()  # every pixel of the ring borders the hole


@pytest.mark.parametrize(("layer", "upsamplings"), [("project", 2), ("up1", 1)])
@pytest.mark.parametrize("mode", ["insert", "remove"])
def test_the_brush_leaves_everything_outside_its_reach_unchanged(layer, upsamplings, mode, reach):
    torch.manual_seed(0)
    spec = DataSpec(1, 16)
    g, _ = build_networks("dcgan", spec, 8, 8, 0)
    gen = LoadedGenerator(g.eval(), "dcgan", spec, [], 0, torch.device("cpu"))
    mask = box_mask(16, 0, 0, 3, 3)
    levels = unit_levels(gen, layer, n=50)
    units = list(range(6)) if layer == "up1" else list(range(12))
    before, after = paint(gen, 5, layer, units, mask, mode, levels=levels)
    cells = F.adaptive_max_pool2d(mask.float()[None, None], 4 if layer == "project" else 8)[0, 0]
    reachable = reach(cells > 0, upsamplings)
    changed = (after - before).abs()[0, 0] > 0
    assert changed.any(), "the brush changed nothing"
    assert not (changed & ~reachable).any()
    assert not reachable.all()  # the test means something: part of the image is out of reach


def test_edits_refuse_what_is_not_there(uncond_run):
    gen = _known()
    z = noise(2, 9, 0)
    with pytest.raises(GanforgeError, match="feature-map layer.*paint"):
        render(gen, z, None, [Edit("nope", [0])])
    with pytest.raises(GanforgeError, match="units 0..8; there is no unit 9"):
        render(gen, z, None, [Edit("paint", [9])])
    with pytest.raises(GanforgeError, match="28x28"):
        render(gen, z, None, [Edit("paint", [0], mask=torch.ones(5, 5, dtype=torch.bool))])
    with pytest.raises(GanforgeError, match="removes or inserts"):
        Edit("paint", [0], "paint")
    with pytest.raises(GanforgeError, match="empty"):
        paint(gen, 0, "paint", [0], torch.zeros(28, 28, dtype=torch.bool))
    # Removing a unit everywhere is the same as its z being off.
    z = torch.zeros(1, 9)
    z[0, BAR_UNIT], z[0, 3] = 2.0, 1.0
    off = z.clone()
    off[0, BAR_UNIT] = 0
    assert torch.equal(render(gen, z, None, [Edit("paint", [BAR_UNIT])]), render(gen, off))
    # A flat layer has no units with a place.
    mlp, _ = build_networks("mlp2014", DataSpec(1, 8), 8, 8, 0)
    flat = LoadedGenerator(mlp.eval(), "mlp2014", DataSpec(1, 8), [], 0, torch.device("cpu"))
    with pytest.raises(GanforgeError, match="none"):
        dissect(flat, "hidden1")


def test_sefa_directions_are_the_first_layers_right_singular_vectors():
    torch.manual_seed(0)
    spec = DataSpec(1, 16)
    g, _ = build_networks("dcgan", spec, 8, 8, 0)
    gen = LoadedGenerator(g.eval(), "dcgan", spec, [], 0, torch.device("cpu"))
    dirs = sefa_directions(gen, 3)
    w = g.project[0].weight.detach()[:, :8]
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    for i, (name, d) in enumerate(dirs.items()):
        assert name == f"sefa {i + 1}"
        assert abs(float(d @ vh[i])) == pytest.approx(1, abs=1e-4)
        assert float((w @ d).norm()) == pytest.approx(float(s[i]), rel=1e-4)
    z = noise(1, 8, 0)
    moved = walk(z, dirs, {"sefa 1": 2.0})
    assert torch.allclose(moved - z, 2.0 * dirs["sefa 1"][None])
    with pytest.raises(GanforgeError, match="no direction"):
        walk(z, dirs, {"sefa 9": 1.0})


def test_class_directions_lead_towards_their_class():
    from ganforge.inside.concepts import reads_as

    gen = _known()
    dirs = class_directions(gen, 600)
    assert dirs and all(abs(float(d.norm()) - 1) < 1e-5 for d in dirs.values())
    z = noise(300, 9, 99)  # fresh latents
    before = reads_as(gen(z))
    for name in dirs:
        c = int(name.split()[1])
        after = reads_as(gen(walk(z, dirs, {name: 2.0})))
        assert (after == c).sum() > (before == c).sum(), name


def test_dreams_raise_their_target(uncond_run):
    gen, critic = load_critic(uncond_run)
    for space in ("latent", "image"):
        d = dream(gen, critic, seed=1, space=space, steps=20, frames=3)
        assert d.steps == [0, 10, 20] and len(d.images) == 3
        assert d.critic[-1] > d.critic[0]
    unit = dream(gen, critic, seed=1, target="project:2", steps=20, frames=2)
    assert unit.objective[-1] > unit.objective[0]
    for target in ("project", "project:\u00b2", "project:x"):
        with pytest.raises(GanforgeError, match="LAYER:UNIT"):
            dream(gen, critic, target=target)
    with pytest.raises(GanforgeError, match="no unit 999"):
        dream(gen, critic, target="project:999")
    with pytest.raises(GanforgeError, match="only be dreamed through the latent"):
        dream(gen, critic, target="project:1", space="image")
    with pytest.raises(GanforgeError, match="feature-map layer"):
        dream(gen, critic, target="up7:1")


def test_dissect_and_dream_write_their_folders(tmp_path, uncond_run):
    report = dissect_run(uncond_run, tmp_path / "d", "project", samples=60, k=2, top=3,
                         progress=False)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "ablation.png", "dissect.json", "dissect.png"]  # fmt: skip
    from ganforge.io.atomic import current_umask

    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~current_umask()  # not 0700
    saved = json.loads((tmp_path / "d" / "dissect.json").read_text())
    assert saved == report and report["units"] == len(report["ranked"])
    assert report["ranked"][0]["iou"] == max(b["iou"] for b in report["best_per_concept"].values())
    with pytest.raises(GanforgeError, match="already exists"):
        dissect_run(uncond_run, tmp_path / "d", "project")
    with pytest.raises(GanforgeError, match="no checkpoint"):
        dissect_run(tmp_path, tmp_path / "e", "project")
    report = dream_run(uncond_run, tmp_path / "r", [0, 4], steps=4)
    assert set(report["dreams"]) == {"0", "4"}
    assert (tmp_path / "r" / "dream_seed4.png").exists()


def test_inside_dissect_and_dream_from_the_command_line(
    tmp_path, uncond_run, cli_many, one_line_error
):
    procs = cli_many(
        {
            "ok": [
                "inside",
                uncond_run,
                "dissect",
                "--layer",
                "project",
                "--samples",
                "40",
                "--k",
                "1",
                "--out",
                tmp_path / "d",
            ],
            "missing": [
                "inside",
                tmp_path / "nothing",
                "dissect",
                "--layer",
                "project",
                "--out",
                tmp_path / "e",
            ],
            "unit": [
                "inside",
                uncond_run,
                "dream",
                "--target",
                "project:500",
                "--out",
                tmp_path / "f",
            ],
            "layer": ["inside", uncond_run, "dissect", "--out", tmp_path / "g"],
            "no-layer": [
                "inside",
                uncond_run,
                "dissect",
                "--layer",
                "up3",
                "--out",
                tmp_path / "h",
            ],
        }  # fmt: skip
    )
    assert procs["ok"].returncode == 0 and "best unit" in procs["ok"].stdout
    one_line_error(procs["missing"], "checkpoint")
    one_line_error(procs["unit"], "no unit 500")
    one_line_error(procs["layer"], "--layer")
    one_line_error(procs["no-layer"], "up3", "project")
    assert not any((tmp_path / n).exists() for n in "efgh")
