"""Device and mixed-precision choice."""

from __future__ import annotations

import contextlib
import os

import torch

from ganforge.errors import GanforgeError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; other names are checked. Each of
    several processes on a machine (torchrun) takes the GPU of its local rank."""
    device = _named_device(name)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        index = int(os.environ["LOCAL_RANK"])
        if index >= torch.cuda.device_count():
            raise GanforgeError(
                f"process {index} on this machine has no GPU of its own "
                f"({torch.cuda.device_count()} GPU(s)); start fewer processes or use --device cpu"
            )
        device = torch.device("cuda", index)
    return device


def _named_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GanforgeError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise GanforgeError(f"unsupported device {name!r}; use auto, cpu, cuda or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("--device cuda was asked for but no CUDA GPU is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise GanforgeError(f"{name} does not exist: {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError("--device mps was asked for but MPS is not available")
    return device


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mode`` on ``device`` (None: full float32).

    ``auto`` uses bf16 on GPUs that support it; on CPUs float32 is faster for these small nets.
    """
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def channels_last(module: torch.nn.Module) -> bool:
    """Convert a convolutional module to channels_last (faster oneDNN/cuDNN kernels); True if
    it was converted. Measured on 2 CPU cores: DCGAN on MNIST steps about 15% faster."""
    convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    if not any(isinstance(m, convs) for m in module.modules()):
        return False
    module.to(memory_format=torch.channels_last)
    return True


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
