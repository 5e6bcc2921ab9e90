"""Fairness through an adversary: classifiers and representations from which a sensitive
attribute cannot be recovered (``estimator.py``), the fresh-adversary audit that checks it
(``audit.py``), and table runs from the command line (``runner.py``)."""

from ganforge.fairness.estimator import AdversarialFairClassifier, FairRepresentation

__all__ = ["AdversarialFairClassifier", "FairRepresentation"]
