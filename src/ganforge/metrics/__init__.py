"""Sample-quality metrics on features, probabilities or pixels.

FID and KID on feature arrays, improved precision/recall, class coverage and the
Inception-Score-form classifier score on class probabilities, memorization and the 2014
paper's Parzen-window log-likelihood on pixels.
"""

from ganforge.metrics.classes import Coverage, class_coverage, classifier_score
from ganforge.metrics.frechet import feature_stats, fid, frechet_distance
from ganforge.metrics.kid import kid
from ganforge.metrics.memorization import Memorization, memorization, nearest_distances
from ganforge.metrics.parzen import PAPER_SIGMAS, ParzenResult, parzen, parzen_log_likelihood
from ganforge.metrics.precision_recall import precision_recall

__all__ = [
    "PAPER_SIGMAS",
    "Coverage",
    "Memorization",
    "ParzenResult",
    "class_coverage",
    "classifier_score",
    "feature_stats",
    "fid",
    "frechet_distance",
    "kid",
    "memorization",
    "nearest_distances",
    "parzen",
    "parzen_log_likelihood",
    "precision_recall",
]
