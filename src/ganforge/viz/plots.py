"""Loss-curve plot of a run's metrics log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganforge.io.atomic import atomic_path


def plot_losses(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Plot D/G losses and mean D(x), D(G(z)) against the step into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "loss_d" in r]
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(steps, [r["loss_d"] for r in rows], label="D loss")
    ax1.plot(steps, [r["loss_g"] for r in rows], label="G loss")
    ax1.set_xlabel("generator step")
    ax1.set_title("losses")
    ax1.legend()
    ax2.plot(steps, [r["d_real"] for r in rows], label="mean D(x)")
    ax2.plot(steps, [r["d_fake"] for r in rows], label="mean D(G(z))")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("generator step")
    ax2.set_title("discriminator outputs")
    ax2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
