"""Differential privacy for the GAN game: the private recipe (DP-SGD on the discriminator),
its accountant, and a membership-inference audit for any trained GAN."""

from ganforge.privacy.accountant import epsilon_spent, noise_multiplier
from ganforge.privacy.audit import attack_result, audit_run, discriminator_scores, distance_scores

__all__ = [
    "attack_result",
    "audit_run",
    "discriminator_scores",
    "distance_scores",
    "epsilon_spent",
    "noise_multiplier",
]
