"""Semi-supervised GAN: the loss against hand-computed values, the labelled-subset choice,
the scikit-learn-style API, the protocol's run folder, and a toy run that must beat the
classifier trained on the labels alone."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.data import ImageSet, load_digits
from ganforge.errors import GanforgeError
from ganforge.semisupervised import (
    SemiSupervisedGAN,
    Settings,
    SupervisedClassifier,
    as_vectors,
    balanced_subset,
    combine_reports,
    load_classifier,
    run_experiment,
)
from ganforge.semisupervised.losses import classifier_loss, feature_matching
from ganforge.semisupervised.nets import Classifier, WNLinear

TINY_UNITS = (64, 32)


@pytest.fixture(scope="module")
def digits_split() -> tuple[ImageSet, ImageSet]:
    """sklearn's 8x8 digits, shuffled once: 1,400 train, 397 test."""
    d = load_digits()
    perm = torch.randperm(len(d), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:]
    return (
        ImageSet(d.images[tr], d.labels[tr], d.class_names, "digits-train"),
        ImageSet(d.images[te], d.labels[te], d.class_names, "digits-test"),
    )


# -- the losses -----------------------------------------------------------------------------


def test_classifier_loss_matches_hand_computed_values():
    # Labelled: logits (0, ln 3), label 1 -> p = 3/4, cross-entropy ln(4/3).
    # Unlabelled: logits (0, 0) -> Z = 2, p(real) = 2/3, -log = ln(3/2).
    # Generated: logits (ln 1/2, ln 1/2) -> Z = 1, p(fake) = 1/2, -log = ln 2.
    labelled = torch.tensor([[0.0, math.log(3.0)]])
    unlabelled = torch.tensor([[0.0, 0.0]])
    fake = torch.full((1, 2), math.log(0.5))
    terms = classifier_loss(labelled, torch.tensor([1]), unlabelled, fake)
    assert terms.supervised.item() == pytest.approx(math.log(4 / 3))
    assert terms.unsupervised.item() == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(2.0))
    assert terms.loss.item() == pytest.approx(
        math.log(4 / 3) + 0.5 * math.log(1.5) + 0.5 * math.log(2.0)
    )
    weighted = classifier_loss(labelled, torch.tensor([1]), unlabelled, fake, 0.0)
    assert weighted.loss.item() == pytest.approx(math.log(4 / 3))


def test_classifier_loss_is_stable_for_huge_logits():
    big = torch.tensor([[1000.0, -1000.0]])
    fake = torch.full((1, 2), -1000.0)  # every real class improbable: confidently fake
    terms = classifier_loss(big, torch.tensor([0]), big, fake)
    assert torch.isfinite(terms.loss)
    # Confident and right on every part: the loss is ~0.
    assert terms.loss.item() == pytest.approx(0.0, abs=1e-6)


def test_feature_matching_is_the_mean_squared_gap_of_batch_means():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # means (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # means (1, 1)
    assert feature_matching(real, fake).item() == pytest.approx((1.0 + 4.0) / 2)


def test_weight_norm_data_init_standardises_the_first_batch():
    torch.manual_seed(0)
    layer = WNLinear(20, 7)
    x = torch.randn(300, 20) * 3 + 1
    direction = layer.v / layer.v.norm(dim=1, keepdim=True)
    projected = x @ direction.T
    out = layer.data_init(x)
    assert torch.allclose(out.mean(0), torch.zeros(7), atol=1e-4)
    assert torch.allclose(out.std(0), torch.ones(7), atol=1e-4)
    expected = (projected - projected.mean(0)) / projected.std(0)
    assert torch.allclose(out, expected, atol=1e-4)


def test_only_the_output_layer_of_the_classifier_trains_its_scale():
    net = Classifier(16, 3, (8, 4))
    names = {n for n, _ in net.named_parameters()}
    assert "out.g" in names
    assert not any(n.startswith("hidden") and n.endswith(".g") for n in names)
    assert {"hidden.0.g", "hidden.1.g"} <= {n for n, _ in net.named_buffers()}


def test_classifier_noise_only_in_training():
    net = Classifier(16, 3, (8,))
    x = torch.rand(4, 16)
    net.eval()
    assert torch.equal(net(x)[0], net(x)[0])
    net.train()
    assert not torch.equal(net(x)[0], net(x)[0])


# -- the labelled subset --------------------------------------------------------------------


def test_balanced_subset_takes_the_same_count_from_each_class():
    labels = torch.arange(1000) % 10
    chosen = balanced_subset(labels, 100, seed=3)
    assert len(chosen) == len(set(chosen.tolist())) == 100
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [10] * 10
    assert torch.equal(chosen, balanced_subset(labels, 100, seed=3))
    assert not torch.equal(chosen, balanced_subset(labels, 100, seed=4))


@pytest.mark.parametrize("count", [15, 5, 0])
def test_balanced_subset_refuses_counts_not_a_multiple_of_the_classes(count):
    with pytest.raises(GanforgeError, match="multiple"):
        balanced_subset(torch.arange(100) % 10, count, 0)


def test_balanced_subset_refuses_more_than_a_class_holds():
    labels = torch.tensor([0] * 50 + [1] * 3)
    with pytest.raises(GanforgeError, match="class 1 has only 3"):
        balanced_subset(labels, 10, 0)


# -- the estimator API ----------------------------------------------------------------------


def test_inputs_in_either_convention_become_the_same_vectors():
    u8 = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    as_float = u8.float() / 127.5 - 1
    expected = torch.tensor([[0.0, 1.0, 0.2, 0.4]])
    assert torch.allclose(as_vectors(u8), expected)
    assert torch.allclose(as_vectors(as_float), expected, atol=1e-6)
    assert torch.allclose(as_vectors(as_float.numpy()), expected, atol=1e-6)
    assert torch.equal(as_float, u8.float() / 127.5 - 1)  # the caller's images are untouched
    with pytest.raises(GanforgeError, match=r"\[-1, 1\]"):
        as_vectors(as_float * 255)
    with pytest.raises(GanforgeError, match="uint8"):
        as_vectors(torch.ones(2, 4, dtype=torch.int32))


def test_fit_predict_save_load(digits_split, tmp_path: Path):
    train, test = digits_split
    idx = balanced_subset(train.labels, 50, 0)
    y = train.labels[idx] * 7 - 5  # any label values: predictions come back in them
    model = SemiSupervisedGAN(
        epochs=0.5,
        units=TINY_UNITS,
        generator_units=(32,),
        batch_size=50,
        progress=False,
        device="cpu",
    ).fit(train.images[idx], y, train.images)
    proba = model.predict_proba(test.images)
    assert proba.shape == (len(test), 10)
    assert torch.allclose(proba.sum(1), torch.ones(len(test)), atol=1e-5)
    assert torch.equal(model.classes_, torch.arange(10) * 7 - 5)
    assert torch.equal(model.predict(test.images), model.classes_[proba.argmax(1)])
    assert model.input_shape_ == (1, 8, 8)
    assert model.history_ and {"supervised", "feature_matching"} <= set(model.history_[-1])
    fakes = model.sample(5)
    assert fakes.shape == (5, 64) and fakes.min() >= -1 and fakes.max() <= 1
    assert model.predict(fakes).shape == (5,)  # samples are in the convention inputs are
    model.save(tmp_path / "m.pt")
    loaded = load_classifier(tmp_path / "m.pt")
    assert isinstance(loaded, SemiSupervisedGAN)
    assert torch.allclose(loaded.predict_proba(test.images), proba, atol=1e-6)
    assert torch.equal(loaded.predict(test.images), model.predict(test.images))
    assert torch.allclose(loaded.sample(5), model.sample(5))


def test_bad_use_gives_clear_errors(digits_split, tmp_path: Path):
    train, _ = digits_split
    with pytest.raises(GanforgeError, match="not fitted"):
        SupervisedClassifier().predict(train.images[:3])
    with pytest.raises(GanforgeError, match="one label per"):
        SupervisedClassifier(progress=False).fit(train.images[:10], train.labels[:9])
    with pytest.raises(GanforgeError, match="at least 2 classes"):
        SupervisedClassifier(progress=False).fit(train.images[:3], torch.zeros(3, dtype=torch.long))
    with pytest.raises(GanforgeError, match="unlabelled 100"):
        SemiSupervisedGAN(progress=False).fit(
            train.images[:10], train.labels[:10], torch.zeros(5, 100, dtype=torch.uint8)
        )
    model = SupervisedClassifier(updates=2, units=TINY_UNITS, progress=False, device="cpu")
    model.fit(train.images[:20], train.labels[:20])
    with pytest.raises(GanforgeError, match="64 values"):
        model.predict(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(GanforgeError, match="not a readable"):
        load_classifier(tmp_path / "junk.pt")
    with pytest.raises(GanforgeError, match="does not exist"):
        load_classifier(tmp_path / "none.pt")


def test_the_gan_beats_the_labels_alone_on_a_toy_problem(digits_split):
    """20 labels (2 per class) of 8x8 digits plus 1,400 unlabelled: the unlabelled images
    must make the classifier better than the same classifier on the 20 labels alone."""
    train, test = digits_split
    gains = []
    for seed in (0, 1):
        idx = balanced_subset(train.labels, 20, seed)
        common = {"units": (200, 100), "batch_size": 50, "seed": seed, "progress": False}
        sup = SupervisedClassifier(updates=300, device="cpu", **common)
        sup.fit(train.images[idx], train.labels[idx])
        gan = SemiSupervisedGAN(epochs=40, generator_units=(100,), device="cpu", **common)
        gan.fit(train.images[idx], train.labels[idx], train.images)
        gains.append(gan.score(test.images, test.labels) - sup.score(test.images, test.labels))
    # Measured 0.073 and 0.030; over seeds 0-5 the gain was 0.013-0.098, mean 0.050.
    assert min(gains) > 0 and sum(gains) / len(gains) > 0.03, gains


# -- the protocol and the commands -----------------------------------------------------------

TINY_SETTINGS = Settings(
    epochs=0.5,
    batch_size=50,
    supervised_updates=5,
    full_updates=5,
    units=TINY_UNITS,
    generator_units=(32,),
)


def test_experiment_writes_results_continues_and_refuses_other_settings(
    digits_split, tmp_path: Path
):
    out = tmp_path / "ssl"
    report = run_experiment(
        out,
        labels=(20, 20),  # a repeated count runs once
        seeds=2,
        settings=TINY_SETTINGS,
        device="cpu",
        progress=False,
        data=digits_split,
    )
    saved = json.loads((out / "semisupervised.json").read_text())
    assert [(r["labels"], r["seed"]) for r in saved["results"]] == [(20, 0), (20, 1)]
    assert saved["settings"]["data"] == "digits-train/digits-test"
    for r in saved["results"]:
        assert 0 <= r["gan"] <= 397 and r["test_images"] == 397
        assert len(r["labelled_indices"]) == 20
    assert (out / "classifier.pt").is_file() and (out / "models" / "labels20-seed1.pt").is_file()
    table = report.table()
    assert "semi-supervised GAN (ours)" in table and "labelled images only" in table
    assert "published" not in table  # not MNIST's 10,000 test images
    before = (out / "semisupervised.json").read_bytes()
    again = run_experiment(
        out,
        labels=(20,),
        seeds=2,
        settings=TINY_SETTINGS,
        device="cpu",
        progress=False,
        data=digits_split,
    )
    assert (out / "semisupervised.json").read_bytes() == before  # nothing re-run
    assert again.table() == table
    # --first-seed adds seeds after those already there (seeds split across machines).
    kwargs = dict(labels=(20,), seeds=1, settings=TINY_SETTINGS, progress=False, data=digits_split)
    run_experiment(out, first_seed=2, device="cpu", **kwargs)
    results = json.loads((out / "semisupervised.json").read_text())["results"]
    assert [r["seed"] for r in results] == [0, 1, 2]
    assert results[2]["labelled_indices"] != results[1]["labelled_indices"]
    with pytest.raises(GanforgeError, match="first-seed"):
        run_experiment(out, seeds=1, first_seed=-1, settings=TINY_SETTINGS, data=digits_split)
    # Another folder's seed 3 joins them in one table; a seed in both folders is refused.
    elsewhere = tmp_path / "ssl-b"
    run_experiment(elsewhere, first_seed=3, device="cpu", **kwargs)
    combined = combine_reports([out, elsewhere])
    assert [r["seed"] for r in combined.results] == [0, 1, 2, 3]
    assert "| 4 |" in combined.table()
    with pytest.raises(GanforgeError, match="seed 3 is in more than one"):
        combine_reports([elsewhere, elsewhere])
    with pytest.raises(GanforgeError, match="holds no"):
        combine_reports([out, tmp_path])
    longer = json.loads((elsewhere / "semisupervised.json").read_text())
    longer["settings"]["epochs"] = 99.0
    (tmp_path / "ssl-c").mkdir()
    (tmp_path / "ssl-c" / "semisupervised.json").write_text(json.dumps(longer))
    with pytest.raises(GanforgeError, match="different settings"):
        combine_reports([out, tmp_path / "ssl-c"])
    other = Settings(**{**TINY_SETTINGS.to_dict(), "epochs": 1.0})
    with pytest.raises(GanforgeError, match="other settings"):
        run_experiment(out, labels=(20,), seeds=2, settings=other, data=digits_split)
    # A folder written before the recipe was recorded ran an older training step: the
    # current code must not add its seeds to that table.
    old_step = json.loads((elsewhere / "semisupervised.json").read_text())
    del old_step["settings"]["recipe"]
    (elsewhere / "semisupervised.json").write_text(json.dumps(old_step))
    with pytest.raises(GanforgeError, match="'recipe': 1"):
        run_experiment(elsewhere, first_seed=4, device="cpu", **kwargs)
    older = Settings(**{**TINY_SETTINGS.to_dict(), "recipe": 1})
    with pytest.raises(GanforgeError, match="trains with recipe"):
        run_experiment(tmp_path / "ssl-d", seeds=1, settings=older, data=digits_split)


def test_classify_labels_a_folder_like_predict_does(digits_split, tmp_path: Path, capsys):
    train, test = digits_split
    model = SupervisedClassifier(updates=50, units=TINY_UNITS, progress=False, device="cpu")
    model.fit(train.images[:200], train.labels[:200])
    model.save(tmp_path / "run" / "classifier.pt")
    folder = tmp_path / "imgs"
    for i in range(30):
        label = int(test.labels[i])
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(test.images[i, 0].numpy(), mode="L").save(folder / str(label) / f"{i}.png")
    assert (
        main(["classify", str(tmp_path / "run"), str(folder), "--out", str(tmp_path / "p.csv")])
        == 0
    )
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 30
    by_index = {int(Path(r["path"]).stem): int(r["label"]) for r in rows}
    expected = model.predict(test.images[:30]).tolist()
    assert [by_index[i] for i in range(30)] == expected
    accuracy = model.score(test.images[:30], test.labels[:30])
    assert f"accuracy against the sub-folder names: {accuracy:.4f}" in capsys.readouterr().out


def test_semisupervised_command_help_and_bad_input(tmp_path: Path, capsys, one_line_error):
    import subprocess

    with pytest.raises(SystemExit) as exit_info:
        main(["semisupervised", "--help"])
    assert exit_info.value.code == 0 and "example" in capsys.readouterr().out
    out = tmp_path / "ssl"
    cases = {
        ("--labels", "15"): ["labels", "15"],
        ("--seeds", "0"): ["seeds", "at least 1"],
        ("--data-dir", str(tmp_path / "empty"), "--no-download"): ["missing", "train-images"],
    }
    for args, fragments in cases.items():
        code = main(["semisupervised", *args, "--out", str(out), "--quiet"])
        err = capsys.readouterr()
        one_line_error(subprocess.CompletedProcess(args, code, err.out, err.err), *fragments)
        assert not out.exists()
    for args, fragments in {
        (str(tmp_path / "none.pt"), str(tmp_path)): ["does not exist"],
        (str(tmp_path), str(tmp_path)): ["classifier.pt", "does not exist"],
    }.items():
        code = main(["classify", *args])
        err = capsys.readouterr()
        one_line_error(subprocess.CompletedProcess(args, code, err.out, err.err), *fragments)


@pytest.mark.parametrize(
    ("change", "match"),
    [({"lr": -1.0}, "--lr"), ({"full_updates": 0}, "--full-updates"),
     ({"baseline_batch_size": 0}, "--baseline-batch-size"), ({"epochs": float("nan")}, "--epochs"),
     ({"units": (16, 0)}, "--units")],
)  # fmt: skip
def test_bad_settings_are_refused_before_anything_runs(tmp_path, change, match):
    from ganforge.semisupervised import Settings, run_experiment

    with pytest.raises(GanforgeError, match=match):
        run_experiment(tmp_path / "out", settings=Settings(**change), data_dir=tmp_path / "none",
                       download=False, progress=False)  # fmt: skip
    assert not (tmp_path / "out").exists()
