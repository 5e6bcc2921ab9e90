"""The Inception-v3 path, exercised with randomly initialised weights (the real file is not
downloadable here): loading, shapes, the FID graph's pooling, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import inception

from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import embed, inception_metrics
from ganforge.metrics.inception import FIDInception, load_inception


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(FIDInception().net.state_dict(), path)
    return path


def test_random_weights_load_and_give_pool_features_and_probabilities(weights: Path):
    model = load_inception(weights)
    feats, probs = embed(model, torch.rand(3, 1, 28, 28) * 2 - 1, batch=2)
    assert feats.shape == (3, 2048) and probs.shape == (3, 1008)
    assert torch.allclose(probs.sum(1), torch.ones(3, dtype=probs.dtype), atol=1e-5)
    result = inception_metrics(
        torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1, model
    )
    assert set(result) == {"fid_inception", "kid_inception", "inception_score"}
    assert result["fid_inception"] >= 0 and 1 <= result["inception_score"] <= 1008


def test_average_pools_skip_the_padding_like_the_tensorflow_graph(weights: Path):
    model = load_inception(weights)
    ours = model.net.Mixed_5b
    stock = inception.InceptionA(192, pool_features=32).eval()
    stock.load_state_dict(ours.state_dict())
    x = torch.rand(1, 192, 9, 9) + 1
    with torch.no_grad():
        a, b = ours(x), stock(x)
    pool = slice(224, 256)  # the pool branch's channels; the other branches agree exactly
    assert torch.equal(a[:, :224], b[:, :224])
    assert not torch.allclose(a[:, pool, 0, 0], b[:, pool, 0, 0])  # corner: padding differs
    assert torch.allclose(a[:, pool, 4, 4], b[:, pool, 4, 4])  # centre: no padding involved


def test_missing_or_wrong_inception_weights_give_clear_errors(tmp_path: Path):
    with pytest.raises(GanforgeError, match="pt_inception"):
        load_inception(None)
    with pytest.raises(GanforgeError, match="do not exist"):
        load_inception(tmp_path / "absent.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(GanforgeError, match="does not hold"):
        load_inception(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(GanforgeError, match="not a readable"):
        load_inception(garbage)
