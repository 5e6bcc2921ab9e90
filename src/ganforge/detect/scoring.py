"""Using a trained detector: load it, score image files, measure it on real and generated
sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from ganforge.detect.training import DETECTOR_FILE, GENERATED, probabilities, scores
from ganforge.errors import GanforgeError
from ganforge.io.rundir import require_kind
from ganforge.robustness.models import load_classifier
from ganforge.train.device import pick_device

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Detector:
    model: nn.Module
    threshold: float
    shape: tuple[int, int, int]  # (C, H, W) of its inputs
    info: dict[str, Any]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """P(generated) of uint8 NHWC images of the detector's size."""
        return probabilities(self.model, images).numpy()

    def measure(self, real: np.ndarray, generated: np.ndarray) -> dict[str, float]:
        """Accuracy at the calibrated threshold and average precision on these sets."""
        probs = torch.from_numpy(np.concatenate([self.probabilities(real),
                                                 self.probabilities(generated)]))  # fmt: skip
        labels = torch.cat([torch.zeros(len(real), dtype=torch.long),
                            torch.full((len(generated),), GENERATED)])  # fmt: skip
        return scores(probs, labels, self.threshold)


def load_detector(path: str | Path, device: str = "cpu") -> Detector:
    """A detector folder of ``ganforge detect train`` or its ``detector.pt``."""
    path = Path(path)
    if path.is_dir():
        require_kind(path, "detector")
        path = path / DETECTOR_FILE
    if not path.is_file():
        raise GanforgeError(
            f"no trained detector at {path} (train one with: ganforge detect train)"
        )
    model, info = load_classifier(path)
    if info.get("kind") != "detector" or "threshold" not in info:
        raise GanforgeError(f"{path} is a classifier, not a ganforge detector")
    dev = pick_device(device)
    return Detector(model.to(dev), float(info["threshold"]), tuple(info["shape"]), info)


def read_image(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file as uint8 HWC with the detector's channels and size."""
    channels, height, width = shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                raise GanforgeError(
                    f"{path} is {image.size[0]}x{image.size[1]}; this detector reads "
                    f"{width}x{height} images"
                )
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise GanforgeError(f"{path} is not a readable image ({err})") from None
    return array[..., None] if array.ndim == 2 else array


def image_files(paths: list[str | Path]) -> list[Path]:
    """The files named, with folders expanded to the images in them (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise GanforgeError(f"{p} does not exist")
    if not out:
        raise GanforgeError("no image files to score")
    return out


def detect_files(detector: Detector, paths: list[str | Path]) -> list[dict[str, Any]]:
    """For each image file: its P(generated) and the call at the calibrated threshold."""
    files = image_files(paths)
    images = np.stack([read_image(f, detector.shape) for f in files])
    probs = detector.probabilities(images)
    return [
        {"file": str(f), "p_generated": float(p),
         "call": "generated" if p >= detector.threshold else "real"}
        for f, p in zip(files, probs, strict=True)
    ]  # fmt: skip
