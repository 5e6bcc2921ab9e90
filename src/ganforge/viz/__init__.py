"""Pictures: sample grids, latent walks, plots."""

from ganforge.viz.grid import (
    grid_image,
    save_gif,
    save_grid,
    save_image,
    save_images,
    save_npz,
    save_pngs,
)
from ganforge.viz.plots import plot_losses

__all__ = [
    "grid_image",
    "plot_losses",
    "save_gif",
    "save_grid",
    "save_image",
    "save_images",
    "save_npz",
    "save_pngs",
]
