"""Training: one engine (``engine.py``) for every recipe; the GAN recipe (``gan.py``) and
its run folder (``runner.py``), weight averages, checkpoints, optimizers and logging.

Entry points for a GAN: :func:`train` (a new run) and :func:`resume` (continue one).
"""

from ganforge.train.engine import Callback, Engine, Phase, Players, Recipe
from ganforge.train.gan import GANRecipe
from ganforge.train.runner import RESUMABLE, Trainer, TrainResult, default_run_dir, resume, train

__all__ = [
    "RESUMABLE",
    "Callback",
    "Engine",
    "GANRecipe",
    "Phase",
    "Players",
    "Recipe",
    "TrainResult",
    "Trainer",
    "default_run_dir",
    "resume",
    "train",
]
