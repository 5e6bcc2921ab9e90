"""A folder of images (ImageFolder layout or flat), resized and centre-cropped to a square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ganforge.data.images import ImageSet
from ganforge.errors import GanforgeError
from ganforge.resources import require_memory

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)


def load_image_folder(
    root: str | Path, image_size: int = 64, channels: int = 3, progress: bool = True
) -> ImageSet:
    """Load every image under ``root``.

    Sub-folders that hold images become classes (torchvision's ImageFolder layout);
    images directly in ``root`` with no such sub-folders make an unlabelled set.
    """
    root = Path(root)
    if not root.is_dir():
        raise GanforgeError(f"image folder {root} does not exist")
    if channels not in (1, 3):
        raise GanforgeError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if image_size < 4:
        raise GanforgeError(f"image size must be at least 4, got {image_size}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and _images_under(d))
    if classes:
        files = [(p, i) for i, c in enumerate(classes) for p in _images_under(root / c)]
    else:
        files = [(p, -1) for p in sorted(root.iterdir()) if p.suffix.lower() in EXTENSIONS]
    if not files:
        raise GanforgeError(f"no images found in {root} (looked for {', '.join(EXTENSIONS)})")
    # Held as uint8 in memory, then once more while stacked.
    require_memory(
        2 * len(files) * channels * image_size**2, f"loading {len(files)} images at {image_size}px"
    )
    from torchvision.transforms import functional as TF  # imported here: slow to import

    mode = "L" if channels == 1 else "RGB"
    arrays, labels, kept, skipped = [], [], [], 0
    bar = tqdm(
        files,
        desc=f"loading {root.name}",
        unit="img",
        leave=False,
        disable=None if progress else True,
    )  # None: only on a terminal
    for path, label in bar:
        try:
            with Image.open(path) as img:
                img = TF.center_crop(TF.resize(img.convert(mode), image_size), image_size)
                arrays.append(np.asarray(img, dtype=np.uint8).reshape(image_size, image_size, -1))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            # unreadable, truncated, or a header claiming more pixels than PIL will decode
            skipped += 1
            continue
        labels.append(label)
        kept.append(str(path))
    if not arrays:
        raise GanforgeError(f"none of the {len(files)} image files in {root} could be read")
    if skipped:
        print(f"ganforge: skipped {skipped} unreadable image file(s) in {root}")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(
        images,
        torch.tensor(labels, dtype=torch.int64) if classes else None,
        class_names=classes,
        name=root.name,
        paths=kept,
    )
