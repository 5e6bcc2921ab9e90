"""Applying a saved classifier to a folder of images: one CSV row per image."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import torch

from ganforge.data import load_image_folder
from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes
from ganforge.io.rundir import require_kind
from ganforge.semisupervised.estimator import load_classifier

MODEL_FILE = "classifier.pt"


@dataclass
class Classified:
    paths: list[str]
    labels: torch.Tensor  # (N,) predicted label values
    confidence: torch.Tensor  # (N,) probability of the predicted label
    accuracy: float | None  # when the folder's sub-folders are named by the labels
    csv_path: Path

    def summary(self) -> str:
        values, counts = torch.unique(self.labels, return_counts=True)
        spread = ", ".join(f"{int(v)}: {int(c)}" for v, c in zip(values, counts, strict=True))
        line = f"classified {len(self.paths)} images ({spread}); wrote {self.csv_path}"
        if self.accuracy is not None:
            line += f"\naccuracy against the sub-folder names: {self.accuracy:.4f}"
        return line


def classify_folder(
    model: str | Path, folder: str | Path, out: str | Path | None = None, force: bool = False
) -> Classified:
    """Predict a label for every image under ``folder`` with the classifier at ``model`` (a
    ``.pt`` file or a run folder holding ``classifier.pt``); write ``path,label,confidence``
    rows to ``out`` (default: ``<folder>-predictions.csv`` beside the folder)."""
    model_path = Path(model)
    if model_path.is_dir():
        require_kind(model_path, "semisupervised")
        model_path = model_path / MODEL_FILE
    classifier = load_classifier(model_path)
    if classifier.input_shape_ is None:
        raise GanforgeError(
            f"{model_path} was fitted on flat vectors, so the image size it needs is unknown"
        )
    channels, size, width = classifier.input_shape_
    if size != width or channels not in (1, 3):
        raise GanforgeError(f"{model_path} expects images shaped {classifier.input_shape_}")
    images = load_image_folder(folder, image_size=size, channels=channels)
    proba = classifier.predict_proba(images.images)
    confidence, index = proba.max(1)
    assert classifier.classes_ is not None
    labels = classifier.classes_[index]
    accuracy = None
    if images.labels is not None and all(n.lstrip("-").isdigit() for n in images.class_names):
        truth = torch.tensor([int(n) for n in images.class_names])[images.labels]
        accuracy = float((truth == labels).float().mean())
    out = Path(out) if out else Path(str(Path(folder).resolve()) + "-predictions.csv")
    if out.exists() and not force:
        raise GanforgeError(f"{out} exists; pass --force to replace it")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "label", "confidence"])
    for path, label, conf in zip(images.paths, labels.tolist(), confidence.tolist(), strict=True):
        writer.writerow([path, label, f"{conf:.4f}"])
    # A file name that is not valid UTF-8 keeps its bytes (as the file system has them).
    atomic_write_bytes(out, buffer.getvalue().encode("utf-8", "surrogateescape"))
    return Classified(images.paths, labels, confidence, accuracy, out)
