"""``ganforge.load(path)``: the right object for any run folder or saved file.

- a GAN run folder or checkpoint -> :class:`ganforge.sampling.LoadedGenerator` (sample from it);
- a semi-supervised run folder (its ``classifier.pt``) or a saved classifier -> the fitted
  estimator (``predict``, ``predict_proba``, ``score``);
- a robust-train run folder (its ``model.pt``) or saved robust classifier ->
  :class:`RobustClassifier` (the network, inputs in [0, 1], and what it was trained with);
- a table run folder -> :class:`ganforge.tables.runner.TableModel` (``sample``);
- a fair run folder (its ``model.pt``) or a saved fair model -> the fitted
  :class:`~ganforge.fairness.AdversarialFairClassifier` or
  :class:`~ganforge.fairness.FairRepresentation`.

Folders written before run manifests (format 1) load too; anything else is a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.io.rundir import run_kind
from ganforge.io.safe import load_safely


@dataclass
class RobustClassifier:
    """A classifier saved by ``ganforge robust-train``: the network in eval mode on the CPU
    (float NCHW inputs in [0, 1], logits out) and its info (network, shape, epoch, settings)."""

    model: nn.Module
    info: dict[str, Any]

    def __call__(self, x: Tensor) -> Tensor:
        return self.model(x)


def _load_robust(path: Path) -> RobustClassifier:
    from ganforge.robustness.models import load_classifier

    return RobustClassifier(*load_classifier(path))


def _load_semisupervised(path: Path) -> Any:
    from ganforge.semisupervised.estimator import load_classifier

    return load_classifier(path)


def _load_gan(path: Path, device: str) -> Any:
    from ganforge.sampling import load_generator

    return load_generator(path, device)


def load(path: str | Path, device: str = "cpu") -> Any:
    """Load whatever ganforge saved at ``path`` (see the module docstring)."""
    from ganforge.fairness.estimator import FORMAT as FAIR_FORMAT
    from ganforge.robustness.models import FORMAT as ROBUST_FORMAT
    from ganforge.semisupervised.estimator import FORMAT as CLASSIFIER_FORMAT
    from ganforge.train.checkpoint import FORMAT, FORMAT_1

    path = Path(path)
    if path.is_dir():
        kind = run_kind(path)
        if kind == "gan":
            return _load_gan(path, device)
        if kind == "semisupervised":
            return _load_semisupervised(path / "classifier.pt")
        if kind == "robust":
            return _load_robust(path)
        if kind == "table":
            from ganforge.tables.runner import load_table_model

            return load_table_model(path, device)
        if kind == "fair":
            from ganforge.fairness.runner import load_fair_model

            return load_fair_model(path)
        raise GanforgeError(f"{path} holds no ganforge run (no manifest.json, checkpoint or model)")
    if not path.is_file():
        raise GanforgeError(f"{path} does not exist")
    formats = (FORMAT, FORMAT_1, CLASSIFIER_FORMAT, ROBUST_FORMAT, FAIR_FORMAT)
    state = load_safely(path, formats, "ganforge file")
    if state["format"] == FAIR_FORMAT:
        from ganforge.fairness.estimator import AdversarialFairClassifier, FairRepresentation

        cls = FairRepresentation if state.get("estimator") == "FairRepresentation" else None
        return (cls or AdversarialFairClassifier).from_state(state)
    if state["format"] == CLASSIFIER_FORMAT:
        return _load_semisupervised(path)
    if state["format"] == ROBUST_FORMAT:
        return _load_robust(path)
    if state["format"] == FORMAT_1 or state.get("kind") == "gan":
        return _load_gan(path, device)
    raise GanforgeError(
        f"{path} is a training checkpoint of a {state.get('kind')} run; load its run folder "
        "for the trained model"
    )
