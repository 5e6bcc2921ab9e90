"""Semi-supervised learning with a GAN: a classifier from a few labels and many unlabelled
images (Salimans et al., 2016). See ``estimator.py`` for the scikit-learn-style API and
``experiment.py`` for the MNIST protocol with its baselines."""

from ganforge.semisupervised.estimator import (
    SemiSupervisedGAN,
    SupervisedClassifier,
    as_vectors,
    load_classifier,
)
from ganforge.semisupervised.experiment import (
    PUBLISHED,
    Settings,
    combine_reports,
    run_experiment,
)
from ganforge.semisupervised.labels import balanced_subset

__all__ = [
    "PUBLISHED",
    "SemiSupervisedGAN",
    "Settings",
    "SupervisedClassifier",
    "as_vectors",
    "balanced_subset",
    "combine_reports",
    "load_classifier",
    "run_experiment",
]
