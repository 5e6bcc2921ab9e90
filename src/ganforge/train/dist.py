"""Training on several processes with torch.distributed (torchrun, DistributedDataParallel).

A run on N processes is the same run as on one: every process reads the same config and
holds the same weights; the global batch (``--batch-size``) is split into N equal shares of
one global permutation (:class:`~ganforge.data.sampler.EpochSampler`); the noise is one
global draw of which each process takes its rows (:class:`SharedRandom`); batch norm
normalizes over the global batch (:func:`sync_batch_norm`); DDP averages the gradients. What
stays per process (dropout, augmentation) draws from a stream seeded by the seed and the
rank (:func:`rank_seed`). Rank 0 alone writes files (:func:`is_writer`).

Processes are started by torchrun (``torchrun --nproc-per-node N -m ganforge train ...``) or
by :func:`launch` (``ganforge train --nproc N``), which is torchrun's launcher called from
Python. Without torchrun's environment (``WORLD_SIZE`` unset or 1) everything here is the
single-process identity.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

# How long a collective waits for a process that neither answers nor dies (a dead one is
# noticed at once: its connections close).
TIMEOUT = timedelta(minutes=10)
# Set by :func:`launch` for its processes: the launcher reports a failed process itself.
LAUNCHED = "GANFORGE_LAUNCHED"


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_writer() -> bool:
    return rank() == 0


def requested_world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def single_node() -> bool:
    return os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")) == os.environ.get(
        "WORLD_SIZE", "1"
    )


def setup(device: torch.device) -> None:
    """Join the process group torchrun describes, once; nothing on a single process.
    CUDA devices talk over NCCL (CPU tensors over gloo), CPUs over gloo."""
    if requested_world_size() <= 1 or dist.is_initialized():
        return
    if device.type not in ("cpu", "cuda"):
        raise GanforgeError(f"several processes need CPUs or CUDA GPUs, not {device.type}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "cuda:nccl,cpu:gloo" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    atexit.register(teardown)  # a process that exits still in its group aborts


def teardown() -> None:
    """Leave the process group, together: one process leaving while another still talks to
    it can abort the other's exit. Unreachable DDP wrappers (held in reference cycles) are
    freed first: freed after the group, their threads abort the exit ("terminate called
    without an active exception", about 1 exit in 40)."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        with contextlib.suppress(Exception):  # a peer that died has nothing to wait for
            dist.barrier()
        dist.destroy_process_group()


def _derived_seed(*keys: int) -> int:
    entropy = [k % 2**64 for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s own random stream: a pure function of both."""
    return _derived_seed(seed, 1, rank)


# -- agreement between processes ----------------------------------------------------------
def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any (a CPU collective: no device sync)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(t: Tensor) -> Tensor:
    """The mean of ``t`` over every process (``t`` itself on one)."""
    if world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / world_size()


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def from_writer(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_(t: Tensor) -> Tensor:
    """Overwrite ``t`` with rank 0's values, in place."""
    if world_size() > 1:
        dist.broadcast(t, src=0)
    return t


def same_weights(modules: list[nn.Module]) -> bool:
    """Whether every process holds exactly rank 0's weights and buffers (a checksum each)."""
    if world_size() == 1:
        return True
    sums = [
        t.detach().double().sum().cpu()
        for m in modules
        for t in m.state_dict().values()
        if t.is_floating_point()
    ]
    mine = torch.stack(sums) if sums else torch.zeros(0, dtype=torch.float64)
    return all(torch.equal(mine, other) for other in gather_objects(mine))


def is_peer_failure(err: BaseException) -> bool:
    """Whether ``err`` is a collective failing because another process went away."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err).lower()
    return world_size() > 1 and any(
        s in text for s in ("connection closed", "connection reset", "broken pipe", "gloo", "nccl")
    )


# -- the global batch ---------------------------------------------------------------------
class SharedRandom:
    """A random stream every process draws identically, each keeping its rows of the global
    draw: a batch of ``n`` rows on each of N processes takes rows ``rank*n ... rank*n + n - 1``
    of a draw of ``N*n`` rows, so the global batch holds the numbers one process would draw.

    A batch made of ``k`` segments (say labelled, unlabelled and generated images run
    through one network call) is drawn as k global segments inside :meth:`segments`.
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = torch.device(device)
        where = self.device if self.device.type in ("cpu", "cuda") else "cpu"
        self.generator = torch.Generator(where).manual_seed(_derived_seed(seed, 2))
        self._segments = 1

    @contextlib.contextmanager
    def segments(self, k: int) -> Iterator[None]:
        previous, self._segments = self._segments, k
        try:
            yield
        finally:
            self._segments = previous

    def _draw(self, fn: Any, shape: tuple[int, ...], dtype: torch.dtype | None) -> Tensor:
        n, k, world = shape[0], self._segments, world_size()
        if n % k:
            raise ValueError(f"{n} rows do not split into {k} segments")
        full = fn(
            (k, world, n // k, *shape[1:]),
            generator=self.generator,
            device=self.generator.device,
            dtype=dtype,
        )
        return full[:, rank()].reshape(shape).to(self.device)

    def randn(self, *shape: int, dtype: torch.dtype | None = None) -> Tensor:
        return self._draw(torch.randn, shape, dtype)

    def rand(self, *shape: int, dtype: torch.dtype | None = None) -> Tensor:
        return self._draw(torch.rand, shape, dtype)

    def randn_like(self, x: Tensor) -> Tensor:
        return self.randn(*x.shape, dtype=x.dtype)

    def state_dict(self) -> Tensor:
        return self.generator.get_state()

    def load_state_dict(self, state: Tensor) -> None:
        self.generator.set_state(state)


# -- batch norm over the global batch -----------------------------------------------------
class _SumOverRanks(torch.autograd.Function):
    """A sum over processes whose gradient is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        # Itself a sum over processes, so that gradient penalties (create_graph=True) can
        # differentiate through it again.
        return _SumOverRanks.apply(grad)


def batch_mean(x: Tensor) -> Tensor:
    """The mean over dim 0 of the global batch whose share ``x`` is (``x.mean(0)`` on one
    process); gradients reach every process's share as they would on one process."""
    if world_size() == 1:
        return x.mean(0)
    return _SumOverRanks.apply(x.sum(0)) / (len(x) * world_size())


class CrossRankBatchNorm(nn.BatchNorm2d):
    """Batch norm (of inputs of any rank) whose training statistics are those of the global
    batch, on any backend: torch's SyncBatchNorm, used on GPUs, refuses CPU modules. Two
    passes (the mean, then the mean squared deviation from it) keep the variance as exact as
    one process's."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"batch norm needs (N, C, ...) inputs, got {x.dim()} dimensions")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and world_size() > 1):
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias,
                self.training or not self.track_running_stats, self.momentum or 0.0, self.eps,
            )  # fmt: skip
        dims = [0, *range(2, x.dim())]
        shape = (1, -1, *([1] * (x.dim() - 2)))
        local = x.numel() // x.shape[1]
        total = _SumOverRanks.apply(torch.cat([x.sum(dims), x.new_tensor([local])]))
        count = total[-1]
        mean = total[:-1] / count
        centered = x - mean.view(shape)
        var = _SumOverRanks.apply(centered.square().sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                n = float(self.num_batches_tracked)
                m = self.momentum if self.momentum is not None else 1 / n
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * count / (count - 1), m)
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every batch norm normalizing over the global batch: torch's
    SyncBatchNorm on CUDA, :class:`CrossRankBatchNorm` elsewhere. Weights and state-dict keys
    are unchanged, so checkpoints load on one process as well."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if isinstance(module, norms) and not isinstance(module, CrossRankBatchNorm):
        new = CrossRankBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
        # The same parameter and buffer objects: optimizers hold the parameters.
        for name, t in [*module.named_parameters(recurse=False), *module.named_buffers()]:
            setattr(new, name, t)
        return new.train(module.training)
    for name, child in module.named_children():
        setattr(module, name, sync_batch_norm(child, device))
    return module


# -- launching ----------------------------------------------------------------------------
def launch(args: list[str], nproc: int) -> int:
    """Run ``python args...`` (``["-m", "ganforge", "train", ...]``) in ``nproc`` processes
    on this machine, as ``torchrun --standalone`` does, and wait for them; the exit code.

    Ctrl-C or SIGTERM reach every process once (they checkpoint and stop: 130). A process
    that exits with an error has said why (its code is returned); one killed by a signal
    raises :class:`~ganforge.errors.GanforgeError`, after the others were stopped.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise GanforgeError(f"--nproc must be at least 1, got {nproc}")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.5,
    )
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env = {"OMP_NUM_THREADS": threads, LAUNCHED: "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the processes inherit this environment
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)(*args)
    except SignalException:
        return 130  # every process was sent the signal, and has checkpointed and stopped
    except ChildFailedError as err:
        failures = err.failures
        # The launcher stops the survivors of a failure with SIGTERM: a process that exited
        # with an error of its own (and said why) is the cause, unless another was killed by
        # a signal the launcher never sends (kill -9).
        killed = {r: f for r, f in failures.items() if f.exitcode < 0}
        outside = {r: f for r, f in killed.items() if f.signal_name() != "SIGTERM"}
        errors = [f.exitcode for f in failures.values() if f.exitcode > 0]
        if outside or (killed and not errors):
            r, f = min((outside or killed).items(), key=lambda item: item[1].timestamp)
            raise GanforgeError(
                f"process {r} of {nproc} was killed by {f.signal_name()}; the others were stopped"
            ) from None
        return max(errors)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return 0
