"""Configuration: defaults < YAML file < flags, validation, and the resolved config.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ganforge.cli import main
from ganforge.config import RunConfig, load_yaml, merge, resolve
from ganforge.errors import GanforgeError
from ganforge.nets import NETWORKS
from ganforge.train import Trainer

TINY_FLAGS = [
    "--dataset", "digits", "--device", "cpu", "--amp", "off", "--width", "8", "--z-dim", "8",
    "--batch-size", "16", "--quiet",
]  # fmt: skip


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_yaml_overlays_defaults_and_overrides_overlay_yaml(tmp_path: Path):
    file = write_yaml(
        tmp_path / "my.yaml",
        {"model": {"network": "mlp2014"}, "train": {"steps": 50, "seed": 3}, "loss": {}},
    )
    cfg = merge(RunConfig(), load_yaml(file))
    assert cfg.model.network == "mlp2014"
    assert cfg.train.steps == 50 and cfg.train.seed == 3
    assert cfg.train.batch_size == RunConfig().train.batch_size  # untouched default
    cfg = merge(cfg, {"train": {"steps": 7}})
    assert cfg.train.steps == 7 and cfg.train.seed == 3


def test_empty_yaml_changes_nothing(tmp_path: Path):
    assert merge(RunConfig(), load_yaml(write_yaml(tmp_path / "e.yaml", ""))) == RunConfig()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"train": {"stepz": 5}}, "stepz"),
        ({"model": {"network": "dcgan", "depth": 3}}, "depth"),
        ({"training": {"steps": 5}}, "training"),
        ({"train": "fast"}, "train"),
        ([1, 2], "mapping"),
        ({"train": {"steps": "ten"}}, "train.steps"),
        ({"data": {"download": "yes"}}, "data.download"),
        ({"model": {"network": 3}}, "model.network"),
    ],
)
def test_bad_yaml_content_is_a_ganforge_error(tmp_path: Path, content, match):
    file = write_yaml(tmp_path / "bad.yaml", content)
    with pytest.raises(GanforgeError, match=match):
        resolve(merge(RunConfig(), load_yaml(file)))


def test_unreadable_yaml_files(tmp_path: Path):
    with pytest.raises(GanforgeError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(GanforgeError, match="not valid YAML"):
        load_yaml(write_yaml(tmp_path / "broken.yaml", "train: {steps: [1,\n"))


def test_ints_become_floats_where_floats_are_expected():
    cfg = merge(RunConfig(), {"train": {"ema_decay": 0}, "optim": {"beta1": 0}})
    assert cfg.train.ema_decay == 0.0 and isinstance(cfg.train.ema_decay, float)
    assert isinstance(cfg.optim.beta1, float)


@pytest.mark.parametrize("network", ["dcgan", "dcgan-cond", "mlp2014", "mlp2014-cond"])
def test_resolve_fills_the_network_family_defaults(network: str):
    family = NETWORKS.get(network)
    cfg = resolve(merge(RunConfig(), {"model": {"network": network}}))
    assert cfg.model.z_dim == family.z_dim and cfg.model.width == family.width
    assert cfg.optim.optimizer == family.optim["optimizer"]
    assert cfg.optim.lr == pytest.approx(family.optim["lr"])
    assert cfg.optim.optimizer == "adam"  # both families train with Adam by default


@pytest.mark.parametrize("network", ["dcgan", "dcgan-cond", "mlp2014", "mlp2014-cond"])
def test_the_older_families_keep_the_recipe_they_were_tuned_with(network: str):
    cfg = resolve(merge(RunConfig(), {"model": {"network": network}}))
    assert (cfg.loss.name, cfg.loss.r1, cfg.loss.r2, cfg.model.clusters) == (
        "nonsaturating",
        0,
        0,
        0,
    )
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.ema_decay) == (1600, 64, 0.999)
    assert cfg.optim.schedule == "constant"


def test_the_default_network_brings_its_own_recipe_and_flags_still_win():
    family = NETWORKS.get(RunConfig().model.network)
    cfg = resolve(RunConfig())
    for section, values in family.recipe.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"{section}.{key}"
    mine = resolve(
        merge(RunConfig(), {"loss": {"name": "hinge", "r1": 0.0}, "train": {"batch_size": 8}})
    )
    assert (mine.loss.name, mine.loss.r1, mine.train.batch_size) == ("hinge", 0.0, 8)
    assert mine.loss.r2 == cfg.loss.r2  # what was not given still comes from the family


@pytest.mark.parametrize("codes", [1, -3])
def test_clusters_need_two_or_more_and_an_unconditional_network(codes: int):
    with pytest.raises(GanforgeError, match="model.clusters"):
        resolve(merge(RunConfig(), {"model": {"network": "dcgan", "clusters": codes}}))
    with pytest.raises(GanforgeError, match="model.clusters"):
        resolve(merge(RunConfig(), {"model": {"network": "dcgan-cond", "clusters": 10}}))


def test_explicit_values_beat_family_defaults():
    cfg = resolve(
        merge(RunConfig(), {"model": {"network": "dcgan", "z_dim": 5}, "optim": {"lr": 0.5}})
    )
    assert cfg.model.z_dim == 5 and cfg.optim.lr == 0.5 and cfg.optim.optimizer == "adam"


def test_switching_optimizer_does_not_keep_the_other_optimizers_learning_rate():
    cfg = resolve(
        merge(RunConfig(), {"model": {"network": "dcgan"}, "optim": {"optimizer": "sgd"}})
    )
    assert cfg.optim.optimizer == "sgd"
    assert cfg.optim.lr == 0.1 and cfg.optim.momentum == 0.5  # SGD's rate, not Adam's 1e-3


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"train": {"steps": 0}}, "train.steps"),
        ({"train": {"batch_size": -1}}, "train.batch_size"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"ema_decay": 1.0}}, "ema_decay"),
        ({"train": {"amp": "fp8"}}, "amp"),
        ({"optim": {"optimizer": "rmsprop"}}, "rmsprop"),
        ({"model": {"network": "gan9000"}}, "gan9000"),
        ({"loss": {"name": "hinge2"}}, "hinge2"),
    ],
)
def test_resolve_rejects_bad_values(overrides, match):
    with pytest.raises(GanforgeError, match=match):
        resolve(merge(RunConfig(), overrides))


def test_total_steps_from_epochs():
    cfg = merge(RunConfig(), {"train": {"epochs": 2, "batch_size": 100, "k": 1}})
    assert cfg.total_steps(1000) == 20
    cfg = merge(cfg, {"train": {"k": 2}})
    assert cfg.total_steps(1000) == 10  # k discriminator batches per generator step
    assert merge(RunConfig(), {"train": {"steps": 33}}).total_steps(1000) == 33


def test_config_round_trips_through_a_dict():
    cfg = resolve(merge(RunConfig(), {"model": {"network": "mlp2014"}, "train": {"seed": 9}}))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert resolve(RunConfig.from_dict(cfg.to_dict())) == cfg  # resolving twice is stable


# -- end to end: the run folder's config.yaml ------------------------------------------------


@pytest.mark.parametrize(("network", "optimizer"), [("dcgan", "adam"), ("mlp2014", "adam")])
def test_config_yaml_in_run_folder_is_resolved(tmp_path: Path, network: str, optimizer: str):
    out = tmp_path / "run"
    assert (
        main(["train", *TINY_FLAGS, "--network", network, "--steps", "1", "--out", str(out)]) == 0
    )
    saved = yaml.safe_load((out / "config.yaml").read_text())
    family = NETWORKS.get(network)
    assert saved["model"] == {
        "network": network, "z_dim": 8, "width": 8, "spectral_norm": False, "clusters": 0
    }  # fmt: skip
    assert saved["optim"]["optimizer"] == optimizer
    assert saved["optim"]["lr"] == pytest.approx(family.optim["lr"])
    assert saved["train"]["steps"] == 1 and saved["data"]["name"] == "digits"


def test_yaml_file_and_flags_end_to_end(tmp_path: Path):
    file = write_yaml(
        tmp_path / "my.yaml",
        {
            "model": {"network": "mlp2014", "width": 40},
            "optim": {"lr": 0.05},
            "train": {"epochs": 3, "seed": 4, "log_every": 1},
        },
    )
    out = tmp_path / "run"
    code = main(["train", "--config", str(file), *TINY_FLAGS, "--steps", "2", "--out", str(out)])
    assert code == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["network"] == "mlp2014"  # from the file
    assert saved["model"]["width"] == 8  # the flag beats the file
    assert saved["optim"] == {**saved["optim"], "optimizer": "adam", "lr": 0.05}
    assert saved["train"]["seed"] == 4
    # --steps wins over the file's epochs: the run stopped after 2 steps, not 3 epochs.
    assert saved["train"]["steps"] == 2 and saved["train"]["epochs"] is None
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_unknown_yaml_key_through_the_command(tmp_path: Path, capsys):
    file = write_yaml(tmp_path / "bad.yaml", {"train": {"stpes": 5}})
    out = tmp_path / "run"
    assert main(["train", "--config", str(file), *TINY_FLAGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganforge: error:") and "stpes" in err[0]
    assert not out.exists()


def test_yaml_learning_rate_in_e_notation_is_a_number_or_a_clear_error(tmp_path: Path):
    """YAML 1.1 reads `1e-3` (no dot) as a string; it must not reach torch as one."""
    file = write_yaml(tmp_path / "lr.yaml", "optim:\n  lr: 1e-3\n")
    try:
        cfg = resolve(merge(RunConfig(), load_yaml(file)))
    except GanforgeError:
        return
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("train", [{"batch_size": 32.0}, {"steps": 5.5}])
def test_float_for_an_integer_setting_is_a_clear_error(tmp_path: Path, make_config, train):
    """`batch_size: 32.0` used to crash in slicing; `steps: 5.5` silently trained 6 steps."""
    with pytest.raises(GanforgeError):
        resolve(make_config(train=train))


@pytest.mark.parametrize(
    "overrides",
    [{"model": {"z_dim": 0}}, {"model": {"width": -4}}, {"data": {"limit": -5}}],
    ids=["z_dim-0", "width-negative", "limit-negative"],
)
def test_non_positive_sizes_are_a_clear_error(tmp_path: Path, make_config, overrides):
    with pytest.raises(GanforgeError):
        Trainer(make_config(**overrides), tmp_path / "run", progress=False)
