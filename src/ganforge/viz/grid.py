"""Pictures out: sample grids, latent-walk strips and animations (all written atomically)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from ganforge.data.images import png_bytes, to_pil, to_uint8
from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_path, current_umask


def grid_image(images: Tensor, nrow: int | None = None, padding: int = 2) -> Tensor:
    """float NCHW in [-1, 1] -> one uint8 HWC picture with ``nrow`` images per row."""
    from torchvision.utils import make_grid  # imported here: slow to import

    if nrow is not None and nrow < 1:
        raise GanforgeError(f"nrow (images per row) must be at least 1, got {nrow}")
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    return to_uint8(grid.unsqueeze(0))[0]


def save_image(hwc: Tensor, path: str | Path, upscale: int = 1) -> None:
    """Save a uint8 HWC tensor in the format ``path``'s suffix names, atomically."""
    path = Path(path)
    fmt = _format(path)
    img = to_pil(hwc)
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt)


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, upscale: int = 1) -> None:
    save_image(grid_image(images, nrow), path, upscale)


def save_gif(frames: Tensor, path: str | Path, duration_ms: int = 80, upscale: int = 4) -> None:
    """Animate float NCHW frames in [-1, 1] (one image per frame), looping back and forth."""
    pics = [to_pil(hwc) for hwc in to_uint8(frames)]
    if upscale > 1:
        pics = [p.resize((p.width * upscale, p.height * upscale), Image.NEAREST) for p in pics]
    pics = pics + pics[-2:0:-1]
    with atomic_path(path) as tmp:
        pics[0].save(
            tmp, format="GIF", save_all=True, append_images=pics[1:], duration=duration_ms, loop=0
        )


def save_npz(images: Tensor, path: str | Path, labels: Tensor | None = None) -> None:
    """Save float NCHW [-1, 1] images as ``images``: uint8 NHWC (and ``labels``) in an .npz."""
    arrays = {"images": to_uint8(images).numpy()}
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def _format(path: Path) -> str:
    """The image format PIL registers for ``path``'s suffix (PNG when there is none)."""
    if not path.suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise GanforgeError(f"{path}: unknown image suffix {path.suffix!r}; use .png, .jpg or .gif")
    return fmt


def write_folder(folder: Path, n: int, encode: Callable[[int], tuple[str, bytes]]) -> None:
    """Files ``encode(i) -> (name, bytes)`` for i < n in the new ``folder``, built aside and
    renamed into place: the folder appears whole or not at all."""
    import shutil
    import tempfile

    if folder.exists():
        raise FileExistsError(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for i in range(n):
            name, data = encode(i)
            (tmp / name).write_bytes(data)
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it owner-only
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_pngs(images: Tensor, folder: str | Path, labels: Tensor | None = None) -> None:
    """One PNG per image in a new ``folder`` (built aside, then renamed into place)."""
    pixels = to_uint8(images)

    def encode(i: int) -> tuple[str, bytes]:
        tag = "" if labels is None else f"_class{int(labels[i])}"
        return f"{i:05d}{tag}.png", png_bytes(pixels[i])

    write_folder(Path(folder), len(pixels), encode)


def save_images(
    images: Tensor,
    out: str | Path,
    fmt: str | None = None,
    labels: Tensor | None = None,
    nrow: int | None = None,
) -> str:
    """Write images as ``grid`` (one PNG), ``png`` (a folder of PNGs) or ``npz``.

    Without ``fmt``, the suffix decides: .npz -> npz, an image suffix -> grid, none -> png.
    Returns the format used.
    """
    out = Path(out)
    if fmt is None:
        suffix = out.suffix.lower()
        fmt = "npz" if suffix == ".npz" else "grid" if suffix else "png"
    if fmt == "grid":
        save_grid(images, out, nrow=nrow)
    elif fmt == "npz":
        save_npz(images, out, labels)
    elif fmt == "png":
        save_pngs(images, out, labels)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return fmt
