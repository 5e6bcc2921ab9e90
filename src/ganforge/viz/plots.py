"""Training curves of a run's metrics log: each panel shows what the loss reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganforge.io.atomic import atomic_path

# Panels by the statistics they show; a panel appears only when the run logged its keys.
PANELS = (
    ("losses", ("loss_d", "loss_g"), None),
    ("discriminator: mean D(x), D(G(z))", ("d_real", "d_fake"), (0.0, 1.0)),
    ("critic: mean output on real, generated", ("critic_real", "critic_fake"), None),
    ("gradient penalties", ("r1", "r2", "gp"), None),
)
LABELS = {
    "loss_d": "D loss", "loss_g": "G loss", "d_real": "mean D(x)", "d_fake": "mean D(G(z))",
    "critic_real": "real", "critic_fake": "generated", "r1": "R1 |grad|^2",
    "r2": "R2 |grad|^2", "gp": "(|grad| - 1)^2",
}  # fmt: skip


def save_png(fig: Any, path: str | Path, dpi: int = 100) -> None:
    """Write a matplotlib figure as a PNG atomically (a whole file or none), then close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def plot_losses(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Plot the logged statistics against the step into a PNG (nothing when none)."""
    panels = [
        (title, [k for k in keys if any(k in r for r in rows)], ylim)
        for title, keys, ylim in PANELS
    ]
    panels = [p for p in panels if p[1]]
    if not panels:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (title, keys, ylim) in zip(axes[0], panels, strict=True):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            marker = "o" if len(points) < 20 else None  # a short run's few points stay visible
            ax.plot(*zip(*points, strict=True), label=LABELS.get(key, key), marker=marker)
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_xlabel("generator step")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    save_png(fig, path)
