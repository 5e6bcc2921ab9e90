"""Membership inference against a trained GAN: can an attacker tell the training records
(members) from records of the same distribution it never saw (non-members)?

Two attacks, each scoring candidates (higher: "member"):
- white-box, LOGAN (Hayes et al., 2019): the discriminator's logit for the candidate (with
  its label for a conditional one). An overfitted discriminator scores its training records
  higher than new ones.
- black-box: minus the distance from the candidate to its nearest generated sample (the
  attacker can only draw samples). A generator that memorizes reproduces its records.

Each is reported as ROC AUC (0.5: no better than chance) and the true-positive rate at a
1% false-positive rate (Carlini et al., 2022: what an attack finds with confidence). A
differentially private model must keep both near chance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ganforge.data import load_dataset, load_split, to_float, to_uint8
from ganforge.errors import GanforgeError
from ganforge.metrics.memorization import nearest_distances


@dataclass
class AttackResult:
    auc: float
    tpr_at_1pct_fpr: float
    members: int
    nonmembers: int


def attack_result(member_scores: Tensor, nonmember_scores: Tensor) -> AttackResult:
    """ROC AUC and TPR at 1% FPR of scores where members should score higher."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = torch.cat([member_scores, nonmember_scores]).double().numpy()
    if not np.isfinite(s).all():
        raise GanforgeError("the attack's scores are not finite")
    fpr, tpr, _ = roc_curve(y, s)
    return AttackResult(
        float(roc_auc_score(y, s)),
        float(np.interp(0.01, fpr, tpr)),
        len(member_scores),
        len(nonmember_scores),
    )


@torch.inference_mode()
def discriminator_scores(
    d: nn.Module, images: Tensor, labels: Tensor | None = None, batch: int = 1000
) -> Tensor:
    """LOGAN's white-box score: the discriminator's logit of each uint8 NCHW candidate."""
    d.eval()
    device = next(d.parameters()).device
    out = []
    for i in range(0, len(images), batch):
        x = to_float(images[i : i + batch]).to(device)
        y = None if labels is None else labels[i : i + batch].to(device)
        out.append(d(x, y).float().cpu())
    return torch.cat(out)


def distance_scores(generated: Tensor, candidates: Tensor) -> Tensor:
    """The black-box score: minus the L2 distance (pixels in [-1, 1]) from each uint8
    candidate to its nearest generated uint8 image."""
    distances, _ = nearest_distances(to_float(candidates), to_float(generated))
    return -distances


def split_members(
    train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor, n: int, seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``n`` random members from the training records and ``n`` non-members from held-out
    ones (fewer if either side has fewer)."""
    n = min(n, len(train), len(test))
    g = torch.Generator().manual_seed(seed)
    i = torch.randperm(len(train), generator=g)[:n]
    j = torch.randperm(len(test), generator=g)[:n]
    return train[i], train_labels[i], test[j], test_labels[j]


def audit_run(
    run: str | Path,
    n: int = 1000,
    samples: int = 10_000,
    seed: int = 0,
    data_dir: str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Both attacks against a GAN run folder: members are ``n`` of the records it was
    trained on (its dataset and ``--limit``), non-members ``n`` of the dataset's test split;
    the black-box attack draws ``samples`` images from the averaged generator."""
    from ganforge.io.rundir import require_kind
    from ganforge.privacy.recipe import checkpoint_privacy
    from ganforge.sampling import critic_from_state, sample
    from ganforge.train.checkpoint import load_checkpoint

    if n < 10:
        raise GanforgeError(f"the audit needs at least 10 candidates a side (-n), got {n}")
    if samples < 1:
        raise GanforgeError(f"--samples must be at least 1, got {samples}")
    if Path(run).is_dir():
        require_kind(run, "gan")
    state = load_checkpoint(run, kind="gan")
    cfg = state["config"]
    data = cfg["data"]
    root = data_dir or data.get("root")
    try:
        test = load_split(data["name"], "test", root, download=False)
    except GanforgeError as err:
        raise GanforgeError(f"the audit needs held-out records: {err}") from None
    train = load_dataset(
        data["name"], root, data.get("image_size"), data.get("channels"), False, data.get("limit"),
        progress=False,
    )  # fmt: skip
    m, ml, nm, nml = split_members(train.images, train.labels, test.images, test.labels, n, seed)
    gen, d = critic_from_state(state, run, device)
    if gen.num_classes and not gen.class_conditional:
        white = None  # the critic wants each candidate's k-means cluster, unknown for new ones
    else:
        y, ny = (ml, nml) if gen.class_conditional else (None, None)
        white = asdict(
            attack_result(discriminator_scores(d, m, y), discriminator_scores(d, nm, ny))
        )
    fake, _ = sample(gen, samples, seed=seed + 1)
    fake = to_uint8(fake).permute(0, 3, 1, 2)
    black = attack_result(distance_scores(fake, m), distance_scores(fake, nm))
    return {
        "run": str(run),
        "step": int(state["step"]),
        "training_records": len(train),
        "privacy": checkpoint_privacy(state),
        "white_box_logan": white,
        "black_box_distance": asdict(black),
    }
