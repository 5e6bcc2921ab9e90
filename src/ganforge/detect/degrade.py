"""What happens to an image on its way around the web: blur, JPEG re-encoding, resizing.

The detector trains on copies degraded at random (CNNDetection's blur + JPEG augmentation,
Wang et al., 2020, plus resizing) and is tested after fixed degradations. Images are uint8
(N, H, W, C) at this boundary (the file's); PIL does the work, once per image before
training, never per step.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from ganforge.data.images import to_pil


def _array(image: Image.Image, channels: int) -> np.ndarray:
    out = np.asarray(image)
    return out[..., None] if out.ndim == 2 else out[..., :channels]


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """Each image JPEG-encoded at ``quality`` (1-95) and decoded."""
    out = np.empty_like(images)
    for i, hwc in enumerate(images):
        buf = io.BytesIO()
        to_pil(hwc).save(buf, format="JPEG", quality=int(quality))
        out[i] = _array(Image.open(buf), images.shape[-1])
    return out


def resize(images: np.ndarray, scale: float, back: bool = True) -> np.ndarray:
    """Each image scaled by ``scale`` (bicubic), and back to its size when ``back``."""
    n, h, w, c = images.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = []
    for hwc in images:
        small = to_pil(hwc).resize(size, Image.BICUBIC)
        out.append(_array(small.resize((w, h), Image.BICUBIC) if back else small, c))
    return np.stack(out)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    out = np.empty_like(images)
    for i, hwc in enumerate(images):
        out[i] = _array(to_pil(hwc).filter(ImageFilter.GaussianBlur(sigma)), images.shape[-1])
    return out


def random_degrade(images: np.ndarray, seed: int, p: float = 0.5) -> np.ndarray:
    """A copy of ``images`` where each image is, independently with probability ``p`` each,
    blurred (sigma in [0, 1.5]), resized (scale in [0.5, 1]) and JPEG-encoded (quality in
    [30, 95]), in that order."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    for i in range(len(out)):
        one = out[i : i + 1]
        if rng.random() < p:
            one = blur(one, rng.uniform(0.0, 1.5))
        if rng.random() < p:
            one = resize(one, rng.uniform(0.5, 1.0))
        if rng.random() < p:
            one = jpeg(one, int(rng.integers(30, 96)))
        out[i] = one[0]
    return out
