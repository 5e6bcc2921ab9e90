"""Checking a fair model the way an adversary would.

:func:`gaps`: accuracy and fairlearn's demographic-parity and equalized-odds differences
(the largest difference between any two groups; 0 is fair).

:func:`fresh_adversaries`: after training, new adversaries that the model never played
against (logistic regression, gradient-boosted trees, an MLP) learn to recover the
sensitive group from the frozen outputs (predicted probabilities or a representation) on
one half of held-out rows and are scored on the other half by balanced accuracy (chance:
1/groups). Their training half is resampled so every group is equally frequent, so an
adversary cannot score by the groups' sizes. With ``labels`` (equalized odds), the
adversaries also see the true label, and the label alone is the baseline to beat.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ganforge.errors import GanforgeError

ADVERSARIES = ("logistic", "boosted trees", "mlp")
# An adversary "recovers" the group when its balanced accuracy beats the baseline by more
# than two standard errors (of a balanced accuracy near 0.5 on the scored rows) and 0.02.
MIN_MARGIN = 0.02


def gaps(y_true: Any, y_pred: Any, groups: Any, positive: Any = None) -> dict[str, float]:
    """Accuracy, demographic-parity and equalized-odds differences (fairlearn's metrics).
    Labels are 0/1, or two values of which ``positive`` (default: the larger) is the
    outcome whose rates are compared."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    values = np.unique(np.concatenate([y_true, y_pred]))
    if len(values) > 2:
        raise GanforgeError(f"the gaps take two classes, got {len(values)}")
    if positive is not None or not set(values.tolist()) <= {0, 1}:
        positive = values[-1] if positive is None else positive
        y_true, y_pred = (y_true == positive).astype(int), (y_pred == positive).astype(int)
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "demographic_parity": float(
            demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
        ),
        "equalized_odds": float(
            equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
        ),
    }


def _adversary(name: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    # No early stopping: its validation share of a small, resampled half would hold
    # duplicates of the training rows and stop the MLP before it learns (it read a
    # representation's group at 0.54 that a fully trained one read at 0.84).
    if name == "boosted trees":
        return HistGradientBoostingClassifier(early_stopping=False, random_state=seed)
    return make_pipeline(StandardScaler(), MLPClassifier((64, 64), max_iter=300, random_state=seed))


def _balanced_rows(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices resampled with replacement to the largest group's size per group."""
    largest = np.bincount(groups).max()
    return np.concatenate(
        [rng.choice(np.flatnonzero(groups == g), largest, replace=True) for g in np.unique(groups)]
    )


def fresh_adversaries(
    outputs: Any,
    groups: Any,
    labels: Any | None = None,
    seed: int = 0,
    adversaries: tuple[str, ...] = ADVERSARIES,
) -> dict[str, Any]:
    """Balanced accuracy of each fresh adversary at recovering ``groups`` from ``outputs``
    (N, D) (and ``labels``), on held-out rows; ``recovered`` names those that beat the
    baseline (chance, or the label alone) by more than ``RECOVERED_MARGIN``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    x = np.asarray(outputs, dtype=np.float64)
    x = x.reshape(len(x), -1)
    _, a = np.unique(np.asarray(groups), return_inverse=True)
    if len(x) != len(a):
        raise GanforgeError(f"{len(x)} outputs but {len(a)} group values")
    counts = np.bincount(a)
    if len(counts) < 2:
        raise GanforgeError("the audit needs rows of at least two groups")
    if counts.min() < 4:
        raise GanforgeError(
            f"a group has {counts.min()} held-out row(s); the audit needs at least 4 of each "
            "(two to learn from, two to score)"
        )
    if not np.isfinite(x).all():
        raise GanforgeError("the outputs hold NaN or infinite values")
    if labels is not None:
        x = np.concatenate([x, np.asarray(labels, dtype=np.float64).reshape(-1, 1)], 1)
    fit, test = train_test_split(np.arange(len(x)), test_size=0.5, random_state=seed, stratify=a)
    rng = np.random.default_rng(seed)
    fit = fit[_balanced_rows(a[fit], rng)]
    chance = 1.0 / len(np.unique(a))
    baseline = chance
    if labels is not None:
        only = LogisticRegression().fit(x[fit, -1:], a[fit])
        baseline = float(balanced_accuracy_score(a[test], only.predict(x[test, -1:])))
    # Under no information each group's recall is about 1/K with variance p(1-p)/n_g;
    # balanced accuracy is their mean.
    sizes = np.bincount(a[test]).astype(np.float64)
    p = 1.0 / len(sizes)
    margin = max(MIN_MARGIN, 2 * float(np.sqrt((p * (1 - p) / sizes).sum())) / len(sizes))
    scores = {}
    for name in adversaries:
        with warnings.catch_warnings():
            # An adversary that stops before converging is still a fair attempt.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = _adversary(name, seed).fit(x[fit], a[fit])
        scores[name] = round(float(balanced_accuracy_score(a[test], model.predict(x[test]))), 4)
    return {
        "balanced_accuracy": scores,
        "chance": chance,
        "baseline": round(baseline, 4),
        "baseline_is": "the label alone" if labels is not None else "chance",
        "margin": round(margin, 4),
        "recovered": [k for k, v in scores.items() if v > baseline + margin],
        "rows": int(len(x)),
    }


def format_audit(audit: dict[str, Any]) -> str:
    lines = [
        f"fresh adversaries recovering the sensitive group ({audit['rows']:,} held-out "
        f"rows, half to learn, half to score; baseline {audit['baseline']:.3f} = "
        f"{audit['baseline_is']}; a score above {audit['baseline'] + audit['margin']:.3f} "
        "recovers it):"
    ]
    for name, score in audit["balanced_accuracy"].items():
        flag = "  <- recovers it" if name in audit["recovered"] else ""
        lines.append(f"  {name:<14s} balanced accuracy {score:.3f}{flag}")
    return "\n".join(lines)
