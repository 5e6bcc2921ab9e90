"""The one training engine: every recipe (the GAN, the semi-supervised GAN, its labels-only
baseline, adversarial training) is trained by :class:`Engine`, none by a loop of its own.

A :class:`Recipe` brings its players (:class:`Players`: modules, optimizers, schedules,
grad scalers, weight averages) and its phases (:class:`Phase`: a named step such as
"D main", "G main" or "D r1", each with its own interval, as in stylegan2-ada's loop). The
engine owns the rest: the step count, learning-rate schedules, mixed precision, the
averages, callbacks (sample grids, evaluation), statistics (summed on the device, read once
per logging window), the divergence check, checkpoints, Ctrl-C / SIGTERM (finish the step,
checkpoint, stop) and exact resume (weights, optimizers, samplers and random state).

Under torchrun (several processes) the engine wraps each trained player in
DistributedDataParallel, gives every process its own random stream, averages the logged
statistics, stops every process at the same step, and lets rank 0 alone write; see
``dist.py``. A recipe takes part by setting ``distributed = True`` and running the forward
passes that train a player through :meth:`Players.trainable`.
"""

from __future__ import annotations

import math
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ganforge.config import save_yaml
from ganforge.errors import GanforgeError, Interrupted
from ganforge.io.rundir import RunLock, has_checkpoints, write_manifest
from ganforge.train import dist
from ganforge.train.checkpoint import load_checkpoint, save_checkpoint
from ganforge.train.device import autocast
from ganforge.train.dist import is_writer
from ganforge.train.ema import EMA
from ganforge.train.metrics_log import MetricsLog
from ganforge.train.optim import SCHEDULES


@dataclass
class Phase:
    """A named part of a training step; ``run(step)`` (the 0-based step being taken) steps
    its player's optimizer and returns statistics (0-dim tensors, left on the device). It
    runs when ``step % every == 0``."""

    name: str
    run: Callable[[int], dict[str, Tensor]]
    every: int = 1


@dataclass
class Callback:
    """``fn(engine)`` after every ``every`` steps, and once more after the last step when
    that did not fall on the interval (``at_end``). Its time is not training time."""

    every: int
    fn: Callable[[Engine], None]
    at_end: bool = True


class Players:
    """The modules a recipe trains, each with its optimizer, learning-rate schedule, grad
    scaler (fp16) and optional weight average, on one device and precision."""

    def __init__(self, device: torch.device, amp: torch.dtype | None = None) -> None:
        self.device, self.amp = device, amp
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedules: dict[str, Callable[[int, int], float]] = {}
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.emas: dict[str, EMA] = {}
        self.wrapped: dict[str, nn.Module] = {}  # DDP wrappers of trained players

    def add(
        self,
        name: str,
        module: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        schedule: str = "constant",
        ema_decay: float | None = None,
    ) -> None:
        self.modules[name] = module
        if optimizer is not None:
            for group in optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
            self.optimizers[name] = optimizer
            self.schedules[name] = SCHEDULES.get(schedule)
            fp16 = self.amp == torch.float16
            self.scalers[name] = torch.amp.GradScaler(self.device.type, enabled=fp16)
        if ema_decay is not None:
            self.emas[name] = EMA(module, ema_decay)

    def __getitem__(self, name: str) -> nn.Module:
        return self.modules[name]

    def trainable(self, name: str) -> nn.Module:
        """``name`` as a forward pass that trains it sees it: on several processes its DDP
        wrapper, whose backward averages the gradients over processes. Passes that only
        carry gradients to another player (the critic in the generator's phase) use the
        plain module."""
        return self.wrapped.get(name, self.modules[name])

    def distribute(self) -> None:
        """On several processes: batch norm over the global batch, DDP around each trained
        player, and every weight average made rank 0's. Nothing on one process."""
        if dist.world_size() == 1 or self.wrapped:
            return
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device] if self.device.type == "cuda" else None
        # Channels-last weights whose gradients come back in the other layout cost DDP a
        # copy and a warning per process; the result is the same.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        for name in self.optimizers:
            module = dist.sync_batch_norm(self.modules[name], self.device)
            self.modules[name] = module
            # Buffers are the same everywhere by construction (global batch norm), so they
            # are not broadcast before every forward pass.
            self.wrapped[name] = DistributedDataParallel(
                module, device_ids=ids, forward_sync_buffers=False
            )
        for ema in self.emas.values():
            for t in ema.model.state_dict().values():
                dist.broadcast_(t)

    def autocast(self):
        return autocast(self.device, self.amp)

    def finite(self) -> bool:
        """Every floating-point weight and buffer, averages included, is finite (one sync)."""
        modules = [*self.modules.values(), *(e.model for e in self.emas.values())]
        checks = [
            t.isfinite().all()
            for m in modules
            for t in m.state_dict().values()
            if t.is_floating_point()
        ]
        return not checks or bool(torch.stack(checks).all())

    def step(self, name: str, loss: Tensor) -> None:
        """Backpropagate ``loss`` (scaled under fp16) and step ``name``'s optimizer."""
        opt, scaler = self.optimizers[name], self.scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def set_lr(self, step: int, total: int) -> None:
        for name, opt in self.optimizers.items():
            factor = self.schedules[name](step, total)
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor

    def update_averages(self, step: int) -> None:
        for name, ema in self.emas.items():
            ema.update(self.modules[name], step)

    def state_dict(self) -> dict[str, Any]:
        return {
            "players": {k: m.state_dict() for k, m in self.modules.items()},
            "ema": {k: e.model.state_dict() for k, e in self.emas.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
        }

    def load_state_dict(self, state: dict[str, Any], network: str = "") -> None:
        from ganforge.train.checkpoint import load_state

        for k, m in self.modules.items():
            load_state(m, state["players"][k], k, network)
        for k, e in self.emas.items():
            load_state(e.model, state["ema"][k], f"averaged {k}", network)
        for k, o in self.optimizers.items():
            base = [group["base_lr"] for group in o.param_groups]  # the config's rates
            o.load_state_dict(state["optimizers"][k])
            for group, lr in zip(o.param_groups, base, strict=True):
                group["base_lr"] = lr
            if state["scalers"][k]:  # empty when it ran without fp16: a fresh scaler
                self.scalers[k].load_state_dict(state["scalers"][k])


class Recipe:
    """What the engine trains. Subclasses set ``players`` and return their ``phases()``;
    ``state_dict``/``load_state_dict`` carry their own state (samplers, best scores).
    ``distributed``: the recipe shards its batches and trains through
    :meth:`Players.trainable`, so it may run on several processes."""

    kind = ""
    title = ""  # what messages call it, when not its kind
    distributed = False
    players: Players
    images_per_step: int | None = None  # for an images/s statistic

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows of a logging window's statistics."""
        return {k: f"{v:.3f}" for k, v in list(stats.items())[:4]}

    def finished(self) -> bool:
        """True when the recipe has nothing left to train before ``total_steps`` (a private
        run whose privacy budget is spent)."""
        return False

    def window_stats(self) -> dict[str, float]:
        """Values logged at the end of a logging window as they stand then, not averaged
        over it (the privacy spent so far)."""
        return {}


class Statistics:
    """Sums each phase's statistics on the device; :meth:`read` is the one host sync of a
    logging window."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, stats: dict[str, Tensor]) -> None:
        for key, value in stats.items():
            value = value.detach().float()
            if key in self.sums:
                self.sums[key] += value
                self.counts[key] += 1
            else:
                self.sums[key], self.counts[key] = value.clone(), 1

    def finite(self) -> bool:
        return not self.sums or bool(torch.stack(list(self.sums.values())).isfinite().all())

    def read(self) -> dict[str, float]:
        """The window's means, then a new window."""
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = dist.mean_over_ranks(torch.stack([self.sums[k] for k in keys])).tolist()
        means = {k: v / self.counts[k] for k, v in zip(keys, values, strict=True)}
        self.sums, self.counts = {}, {}
        return means

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state.get("sums", {}).items()}
        self.counts = dict(state.get("counts", {}))


class PeerFailure(GanforgeError):
    """Another process of a distributed run went away; this one stopped too."""


def first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]


class Diverged(GanforgeError):
    """Training produced non-finite values; the message says what the checkpoint holds."""


@dataclass
class EngineResult:
    steps: int
    interrupted: bool
    seconds: float  # training time of this call (callbacks and checkpoints excluded)
    steps_done: int
    last_stats: dict[str, float] = field(default_factory=dict)


def rng_state(device: torch.device) -> dict[str, Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    if "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"])


class Engine:
    """Trains ``recipe`` for ``total_steps`` steps.

    ``checkpoint``: the file written every ``checkpoint_every`` steps, at the end and on
    Ctrl-C (None: never). ``header``: plain values stored in every checkpoint (the config).
    ``log``: where statistics go every ``log_every`` steps (also given to ``on_log``).
    ``seed``: on several processes, each process's own random stream is seeded from it and
    the process's rank.
    """

    def __init__(
        self,
        recipe: Recipe,
        total_steps: int,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None,
        log_every: int = 50,
        log: MetricsLog | None = None,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
        callbacks: list[Callback] | tuple[Callback, ...] = (),
        header: dict[str, Any] | None = None,
        progress: bool = True,
        desc: str = "train",
        seed: int = 0,
    ) -> None:
        if dist.world_size() > 1 and not recipe.distributed:
            raise GanforgeError(f"{recipe.title or recipe.kind} training runs on one process only")
        self.recipe, self.players = recipe, recipe.players
        self.device = self.players.device
        self.total_steps = total_steps
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every = checkpoint_every
        self.log_every, self.log, self.on_log = log_every, log, on_log
        self.callbacks = list(callbacks)
        self.header = header or {}
        self.progress, self.desc = progress and is_writer(), desc
        self.seed = seed
        # Set when a checkpoint of another process count is continued: what the user is told.
        self.continued_from: int | None = None
        self.phases = recipe.phases()
        self.stats = Statistics()
        self.step = 0
        self.window_steps = 0
        # Training time over the whole run, resumes included; time in callbacks and
        # checkpoints is left out. The logging window started at ``window_start`` of it.
        self.seconds = 0.0
        self.window_start = 0.0
        self._mark = time.perf_counter()
        self.saved_step: int | None = None  # the step the checkpoint file holds
        self.saved_other = False  # another file (best.pt) was written

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's contents (on several processes, every process must call it: it
        gathers each one's random state)."""
        window = {
            "window_steps": self.window_steps,
            "window_seconds": self.seconds - self.window_start,
        }
        ranks = dist.gather_objects(rng_state(self.device))
        state = {
            "kind": self.recipe.kind,
            **self.header,
            "step": self.step,
            "seconds": self.seconds,
            **self.players.state_dict(),
            "recipe": self.recipe.state_dict(),
            "rng": rng_state(self.device),
            "stats": {**self.stats.state_dict(), **window},
            "world_size": len(ranks),
        }
        if len(ranks) > 1:
            state["rng_ranks"] = ranks  # each process's own stream, by rank
        return state

    def load_state_dict(self, state: dict[str, Any], network: str = "") -> None:
        """Continue from a checkpoint: everything the next step depends on is restored."""
        if state.get("kind") != self.recipe.kind:
            raise GanforgeError(
                f"the checkpoint is a {state.get('kind')} run, not a {self.recipe.kind} one"
            )
        self.players.load_state_dict(state, network)
        self.recipe.load_state_dict(state["recipe"])
        self.step = self.saved_step = int(state["step"])
        saved_world, world = int(state.get("world_size", 1)), dist.world_size()
        if saved_world == world:
            own = state["rng_ranks"][dist.rank()] if world > 1 else state["rng"]
            set_rng_state(own, self.device)
        else:
            # The global batch, data order and shared noise carry over; each process's own
            # stream cannot, so it starts afresh from the seed, the rank and the step.
            torch.manual_seed(dist.rank_seed(self.seed + self.step, dist.rank()))
            self.continued_from = saved_world
        self.seconds = float(state.get("seconds", 0.0))
        stats = state.get("stats", {})
        self.stats.load_state_dict(stats, self.device)
        self.window_steps = int(stats.get("window_steps", 0))
        self.window_start = self.seconds - float(stats.get("window_seconds", 0.0))

    def save(self, path: str | Path | None = None) -> None:
        """Checkpoint to ``path`` (default: the engine's checkpoint file); weights that the
        statistics show diverged are never written."""
        path = path or self.checkpoint
        if path is None:
            return
        self._check_finite(weights=True)
        if not dist.same_weights([*self.players.modules.values()]):
            raise GanforgeError(
                f"the processes' weights differ at step {self.step}: the {self.recipe.kind} "
                "recipe trains a player outside its DDP wrapper (a bug); nothing was saved"
            )
        state = self.state_dict()  # every process takes part (random states are gathered)
        if not is_writer():
            return
        save_checkpoint(path, state)
        self.saved_other |= path != self.checkpoint
        if path == self.checkpoint:
            self.saved_step = self.step

    def _check_finite(self, weights: bool = False) -> None:
        """Statistics (and, before a checkpoint, every weight and buffer, averages included)
        must be finite; otherwise stop, saying what the checkpoint file holds."""
        finite = self.stats.finite() and (not weights or self.players.finite())
        if dist.any_rank(not finite):
            raise self._diverged()

    def _diverged(self) -> Diverged:
        if self.saved_step is not None:
            kept = f"the checkpoint of step {self.saved_step} is kept"
        elif self.saved_other:
            kept = "only the best checkpoint so far was written"
        else:
            kept = "no checkpoint was written"
        return Diverged(
            f"training diverged (non-finite values) by step {self.step}; {kept}. Try a lower --lr"
        )

    @contextmanager
    def writing(self, folder: Path, kind: str, config: Any) -> Iterator[None]:
        """The run folder while this engine trains into it: locked against a second writer,
        its checkpoint still the one this engine started from (another process may have
        moved the run on between the first look and the lock), marked with its manifest and
        resolved config. A new folder that ends in divergence without any checkpoint is
        removed. On several processes rank 0 alone touches the folder."""
        if not is_writer():
            yield
            return
        created = not folder.exists()
        with RunLock(folder):
            last = self.checkpoint
            on_disk = load_checkpoint(last)["step"] if last and last.exists() else None
            if on_disk != self.saved_step:
                raise GanforgeError(
                    f"{folder} was changed by another process (its checkpoint is at step "
                    f"{on_disk}); run the command again"
                )
            write_manifest(folder, kind)
            save_yaml(config, folder / "config.yaml")
            try:
                yield
            except Diverged:
                if created and not has_checkpoints(folder):  # nothing worth keeping
                    shutil.rmtree(folder, ignore_errors=True)
                raise

    # -- the loop ---------------------------------------------------------------------------
    def train_step(self) -> None:
        """One step: every phase due at this step, then the weight averages."""
        self.players.set_lr(self.step, self.total_steps)
        for phase in self.phases:
            if self.step % phase.every == 0:
                self.stats.add(phase.run(self.step))
        self.step += 1
        self.window_steps += 1
        self.players.update_averages(self.step)

    def _bank(self) -> None:
        """Count the time since the last mark as training time."""
        now = time.perf_counter()
        self.seconds, self._mark = self.seconds + now - self._mark, now

    def _log(self) -> dict[str, float]:
        stats = self.stats.read()  # the window's one host sync: the device has caught up
        if not all(math.isfinite(v) for v in stats.values()):
            raise self._diverged()
        self._bank()
        steps, seconds = self.window_steps, self.seconds - self.window_start
        if self.recipe.images_per_step:
            stats["images_per_s"] = steps * self.recipe.images_per_step / max(seconds, 1e-9)
        stats.update(self.recipe.window_stats())
        if self.log is not None and is_writer():
            self.log.scalars(self.step, stats)
        if self.on_log is not None:
            self.on_log(self.step, stats)
        self.window_steps, self.window_start = 0, self.seconds
        return stats

    def run_logged(self, folder: Path) -> EngineResult:
        """:meth:`run` with statistics going to ``folder``'s ``metrics.jsonl``; an
        interruption (checkpoint saved) is raised as :class:`Interrupted` saying how to
        continue."""
        log = MetricsLog(folder, self.step)
        self.log = log
        try:
            result = self.run()
        finally:
            log.close()
        if result.interrupted:
            raise Interrupted(
                f"interrupted at step {result.steps} of {self.total_steps}; checkpoint saved. "
                "The same command continues from there"
            )
        return result

    def run(self) -> EngineResult:
        """Train to ``total_steps``; Ctrl-C or SIGTERM finish the step, checkpoint and stop
        (a second Ctrl-C stops at once)."""
        stop = {"asked": False, "signals": 0}

        def on_signal(signum, frame):
            stop["signals"] += 1
            if stop["signals"] > 1:
                raise KeyboardInterrupt
            stop["asked"] = True

        main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGINT, signal.SIGTERM) if main else ()
        previous = {sig: signal.signal(sig, on_signal) for sig in signals}
        if dist.world_size() > 1:
            self.players.distribute()
            if self.saved_step is None and self.step == 0:  # a new run: own streams
                torch.manual_seed(dist.rank_seed(self.seed, dist.rank()))
        start_step, start_seconds, stats = self.step, self.seconds, {}
        self._mark = time.perf_counter()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not self.progress,
            desc=self.desc,
            unit="step",
            dynamic_ncols=True,
        )

        def aside(due: list[Callback], save: bool) -> None:
            """Run callbacks (and a checkpoint) outside the training time; never on weights
            that have diverged (an evaluation of them would fail less clearly)."""
            self._bank()
            if due:
                self._check_finite(weights=True)
            for cb in due:
                cb.fn(self)
            if save:
                self.save()
            self._mark = time.perf_counter()

        def stopping() -> bool:
            """Ctrl-C or SIGTERM on any process stops every one after the same step."""
            stop["asked"] = dist.any_rank(stop["asked"])
            return stop["asked"]

        try:
            while self.step < self.total_steps and not self.recipe.finished() and not stopping():
                self.train_step()
                bar.update(1)
                step = self.step
                last = step == self.total_steps or self.recipe.finished()
                if step % self.log_every == 0 or last:
                    stats = self._log()
                    bar.set_postfix(self.recipe.postfix(stats))
                due = [cb for cb in self.callbacks if step % cb.every == 0]
                save = bool(self.checkpoint_every) and step % self.checkpoint_every == 0
                if due or save:
                    aside(due, save)
            self._bank()
            last_saved = bool(self.checkpoint_every) and self.step % self.checkpoint_every == 0
            # A run continued at its end (nothing trained now) has had its last callbacks.
            finished = not stop["asked"] and self.step > start_step
            at_end = [cb for cb in self.callbacks if cb.at_end and self.step % cb.every] * finished
            if at_end or not last_saved or stop["asked"]:
                aside(at_end, True)
        except Exception as err:
            if dist.world_size() > 1 and dist.is_peer_failure(err):
                raise PeerFailure(
                    f"another process of this run stopped at step {self.step} ({first_line(err)})"
                ) from err
            raise
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return EngineResult(
            self.step, stop["asked"], self.seconds - start_seconds, self.step - start_step, stats
        )
