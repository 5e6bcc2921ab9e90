"""The GAN game's mathematics: adversarial losses, gradient penalties and differentiable
augmentation, each registered by name so that a config selects them."""

from ganforge.losses.adversarial import (
    LOSSES,
    AdversarialLoss,
    Critic,
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    RelativisticLoss,
    Terms,
    WassersteinLoss,
    build_loss,
)
from ganforge.losses.augment import DiffAugment
from ganforge.losses.regularizers import (
    R1,
    R2,
    REGULARIZERS,
    GradientPenalty,
    Regularizer,
    input_gradients,
)

__all__ = [
    "LOSSES",
    "R1",
    "R2",
    "REGULARIZERS",
    "AdversarialLoss",
    "Critic",
    "DiffAugment",
    "GradientPenalty",
    "HingeLoss",
    "LeastSquaresLoss",
    "MinimaxLoss",
    "NonSaturatingLoss",
    "Regularizer",
    "RelativisticLoss",
    "Terms",
    "WassersteinLoss",
    "build_loss",
    "input_gradients",
]
