"""Adversarial examples: attacks, a robustness evaluation that checks itself for gradient
masking, and adversarial training (Goodfellow et al., 2014; Madry et al., 2017; Wong et
al., 2020)."""

from ganforge.robustness.attacks import fgsm, pgd
from ganforge.robustness.evaluate import RobustnessReport, evaluate_robustness, save_report
from ganforge.robustness.models import CLASSIFIERS, build_classifier, load_classifier
from ganforge.robustness.training import RobustTrainConfig, robust_train

__all__ = [
    "CLASSIFIERS",
    "RobustTrainConfig",
    "RobustnessReport",
    "build_classifier",
    "evaluate_robustness",
    "fgsm",
    "load_classifier",
    "pgd",
    "robust_train",
    "save_report",
]
