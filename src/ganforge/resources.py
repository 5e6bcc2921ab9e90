"""Memory checks before large allocations: a size that cannot fit is refused in one line
with its estimate, instead of reaching the kernel's out-of-memory killer."""

from __future__ import annotations

import os

from ganforge.errors import GanforgeError

GiB = 1024**3


def available_bytes() -> int:
    """Memory the process can still use: MemAvailable on Linux, else all physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def require_image_memory(n: int, channels: int, image_size: int, z_dim: int, what: str) -> None:
    """``n`` generated float images and their noise, held whole and once more while they are
    batched or written."""
    require_memory(2 * n * 4 * (channels * image_size**2 + z_dim), what)


def require_memory(needed: float, what: str) -> None:
    """Refuse ``what`` when its estimated ``needed`` bytes exceed what is available."""
    have = available_bytes()
    if needed > have:
        raise GanforgeError(
            f"{what} needs about {needed / GiB:,.1f} GiB of memory; {have / GiB:,.1f} GiB "
            "are available. Choose smaller sizes"
        )
