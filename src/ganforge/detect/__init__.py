"""Telling generated images from real ones: a detector trained on real images and GAN
samples, its calibration, and the degradations it must survive."""

from ganforge.detect.scoring import Detector, detect_files, load_detector
from ganforge.detect.training import DetectorConfig, DetectorResult, train_detector

__all__ = [
    "Detector",
    "DetectorConfig",
    "DetectorResult",
    "detect_files",
    "load_detector",
    "train_detector",
]
