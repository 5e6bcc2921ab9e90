"""Conditioning on k-means clusters of the data: the clustering, and a GAN that never reads
a label yet samples its clusters by their share of the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganforge.data import ImageSet, load_digits
from ganforge.data.clusters import cluster_images, kmeans
from ganforge.errors import GanforgeError
from ganforge.sampling import load_generator, sample
from ganforge.train import train
from ganforge.train.checkpoint import load_checkpoint


def test_kmeans_finds_separated_blobs_whatever_their_order():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = torch.randint(4, (2000,), generator=g)
    x = centres[truth] + 0.5 * torch.randn(2000, 2, generator=g)
    found, assignment = kmeans(x, 4, seed=3)
    # The same partition, whatever the numbering: each found cluster is one true blob.
    for c in range(4):
        assert len(set(truth[assignment == c].tolist())) == 1
    assert sorted(found.round().tolist()) == sorted(centres.tolist())


def test_kmeans_is_deterministic_and_checks_k():
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(kmeans(x, 7, seed=2)[1], kmeans(x, 7, seed=2)[1])
    for k in (0, 501):
        with pytest.raises(GanforgeError, match="k-means"):
            kmeans(x, k)


def test_cluster_images_puts_identical_images_together():
    digits = load_digits()
    twice = torch.cat([digits.images[:300], digits.images[:300]])
    labels = cluster_images(twice, 12)
    assert labels.shape == (600,) and labels.max() < 12
    assert torch.equal(labels[:300], labels[300:])


def test_a_cluster_conditioned_gan_never_reads_labels_and_samples_by_share(
    tmp_path: Path, make_config, same_state
):
    cfg = make_config(model={"network": "dcgan", "clusters": 5}, train={"steps": 4})
    digits = load_digits()
    unlabelled = ImageSet(digits.images)
    train(cfg, tmp_path / "labelled", data=digits, progress=False)
    train(cfg, tmp_path / "unlabelled", data=unlabelled, progress=False)
    a, b = load_checkpoint(tmp_path / "labelled"), load_checkpoint(tmp_path / "unlabelled")
    same_state(a["players"], b["players"], "players")  # the labels changed nothing

    clusters = a["recipe"]["clusters"].long()
    shares = torch.bincount(clusters, minlength=5).double() / len(clusters)
    assert a["recipe"]["class_names"] == [f"cluster {i}" for i in range(5)]
    gen = load_generator(tmp_path / "labelled")
    torch.testing.assert_close(gen.generator.label_shares.double(), shares)
    _, labels = sample(gen, 20_000, seed=1)
    drawn = torch.bincount(labels, minlength=5).double() / 20_000
    assert (drawn - shares).abs().max() < 0.015
    assert torch.equal(sample(gen, 50, seed=4)[1], sample(gen, 50, seed=4)[1])


def test_a_checkpoint_with_broken_clusters_is_refused(tmp_path: Path, make_config):
    from ganforge.io.safe import save_state
    from ganforge.train import resume

    cfg = make_config(model={"network": "dcgan", "clusters": 5}, train={"steps": 2})
    train(cfg, tmp_path / "run", progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    state = load_checkpoint(tmp_path / "run")
    state["recipe"]["clusters"] = state["recipe"]["clusters"][:10]
    save_state(last, state)
    with pytest.raises(GanforgeError, match="clusters"):
        resume(tmp_path / "run", {"train": {"steps": 4}}, progress=False)
