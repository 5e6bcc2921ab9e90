"""A GAN run in a run folder: the GAN recipe on the engine, with the folder's files.

The folder gets ``manifest.json`` (kind ``gan``), ``config.yaml`` (resolved),
``checkpoints/last.pt`` (and ``best.pt`` with ``--eval-every``), ``samples/`` and
``samples.png`` (the averaged generator at fixed noise), ``metrics.jsonl``, ``tb/`` and
``losses.png``. Entry points: :func:`train` (a new run) and :func:`resume` (continue one).

Under torchrun both join the process group first; every process then trains its share and
rank 0 alone writes the folder, which holds exactly the files of a single-process run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ganforge.config import RunConfig, merge, resolve, resumable_keys
from ganforge.data import ImageSet, load_dataset
from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes
from ganforge.io.rundir import check_out_folder, require_kind
from ganforge.nets import draw_labels, generate
from ganforge.resources import require_image_memory
from ganforge.train import dist
from ganforge.train.checkpoint import LAST, load_checkpoint
from ganforge.train.device import amp_dtype, pick_device
from ganforge.train.engine import Callback, Engine
from ganforge.train.gan import GANRecipe
from ganforge.train.metrics_log import MetricsLog, read_metrics
from ganforge.viz import grid_image, plot_losses, save_image

# What may change when a run continues; everything else would break "continue exactly".
RESUMABLE = resumable_keys(RunConfig)
EVAL_KEYS = (
    "fid", "kid", "precision", "recall", "classifier_score", "classes_covered",
    "confident_fraction",
)  # fmt: skip


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    interrupted: bool
    seconds: float
    images_per_second: float
    last_stats: dict[str, float]


def fixed_noise(
    n: int, z_dim: int, num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and labels: each row of 10 cycles through the classes) for sample grids."""
    g = torch.Generator().manual_seed(seed + 12345)
    z = torch.randn(n, z_dim, generator=g)
    labels = torch.arange(n) % num_classes if num_classes else None
    return z, labels


class Trainer:
    """The GAN recipe, its engine and its run folder; ``run()`` plays the game."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: str | Path,
        data: ImageSet | None = None,
        checkpoint: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg = resolve(cfg)
        self.run_dir = Path(run_dir)
        t = cfg.train
        self.device = pick_device(t.device)
        dist.setup(self.device)
        progress = progress and dist.is_writer()
        torch.manual_seed(t.seed)
        if data is None:
            d = cfg.data
            data = load_dataset(
                d.name, d.root, d.image_size, d.channels, d.download, d.limit, progress
            )
        if checkpoint is not None and checkpoint["config"]["model"]["network"] != cfg.model.network:
            raise GanforgeError(
                f"the checkpoint was trained with network "
                f"{checkpoint['config']['model']['network']!r}, not {cfg.model.network!r}"
            )
        self.total_steps = cfg.total_steps(len(data))
        if cfg.model.clusters and checkpoint is None and progress:
            tqdm.write(f"clustering {len(data):,} images into {cfg.model.clusters} (k-means)")
        amp, fresh = amp_dtype(t.amp, self.device), checkpoint is None
        if cfg.privacy.enabled:
            from ganforge.privacy.recipe import PrivateGANRecipe

            if progress and fresh:
                tqdm.write(f"planning the noise for epsilon {cfg.privacy.epsilon:g}")
            self.recipe = PrivateGANRecipe(cfg, data, self.device, amp, fresh, self.total_steps)
        else:
            self.recipe = GANRecipe(cfg, data, self.device, amp, fresh)
        shape = (self.recipe.spec.channels, self.recipe.spec.image_size, cfg.model.z_dim)
        require_image_memory(t.num_samples, *shape, f"sample grids of {t.num_samples:,} images")
        if t.eval_every:
            require_image_memory(t.eval_samples, *shape, f"evaluating {t.eval_samples:,} samples")
        self.z_fixed, self.y_fixed = fixed_noise(
            t.num_samples, cfg.model.z_dim, self.recipe.g.num_classes, t.seed
        )
        self.real = self._eval_data() if t.eval_every and dist.is_writer() else None
        callbacks = [Callback(t.sample_every, self._write_samples)]
        if t.eval_every:
            callbacks.append(Callback(t.eval_every, self._evaluate, at_end=False))
        if cfg.privacy.enabled:
            callbacks.append(Callback(t.checkpoint_every, self._write_privacy))
        self.engine = Engine(
            self.recipe,
            self.total_steps,
            checkpoint=self.run_dir / LAST,
            checkpoint_every=t.checkpoint_every,
            log_every=t.log_every,
            callbacks=callbacks,
            header={"config": cfg.to_dict()},
            progress=progress,
            seed=t.seed,
        )
        if checkpoint is not None:
            self.engine.load_state_dict(checkpoint, cfg.model.network)
            if self.engine.continued_from is not None and progress:
                tqdm.write(
                    f"continuing a run of {self.engine.continued_from} process(es) on "
                    f"{dist.world_size()}: the global batch ({t.batch_size}), the data order "
                    "and the noise carry over, each process's own random stream does not, so "
                    "it is no longer bit for bit the uninterrupted run"
                )

    # What benchmarks and tests reach for.
    @property
    def g(self) -> torch.nn.Module:
        return self.recipe.g

    @property
    def d(self) -> torch.nn.Module:
        return self.recipe.d

    @property
    def data(self) -> ImageSet:
        return self.recipe.data

    @data.setter
    def data(self, value: Any) -> None:
        self.recipe.data = value

    @property
    def step(self) -> int:
        return self.engine.step

    def _eval_data(self):
        """The real MNIST side of in-training evaluation, loaded before any output is written."""
        from ganforge.metrics.evaluate import load_real

        if (self.recipe.spec.channels, self.recipe.spec.image_size) != (1, 28):
            raise GanforgeError(
                "--eval-every measures against MNIST: it needs 28x28 grayscale data"
            )
        return load_real(self.cfg.data.root, download=self.cfg.data.download)

    @torch.inference_mode()
    def samples(self) -> torch.Tensor:
        """The averaged generator's images at the fixed noise, float NCHW in [-1, 1], CPU."""
        dev = self.device
        y = None if self.y_fixed is None else self.y_fixed.to(dev)
        return self.recipe.ema(self.z_fixed.to(dev), y).float().cpu()

    def _write_samples(self, engine: Engine) -> None:
        if not dist.is_writer():
            return
        grid = grid_image(self.samples(), nrow=10)
        save_image(grid, self.run_dir / "samples" / f"step_{engine.step:06d}.png", upscale=2)
        save_image(grid, self.run_dir / "samples.png", upscale=2)
        if engine.log is not None:
            engine.log.image("samples", grid.permute(2, 0, 1), engine.step)

    def _write_privacy(self, engine: Engine | None = None) -> None:
        """``privacy.json``: the budget, the mechanism's parameters and the epsilon spent."""
        report = {"step": self.engine.step, **self.recipe.report()}
        atomic_write_bytes(self.run_dir / "privacy.json", json.dumps(report, indent=2).encode())

    def _evaluate(self, engine: Engine) -> None:
        """FID, KID, precision/recall and coverage of the averaged generator at fixed noise
        (its own RNG, so training randomness is untouched); a new best FID saves best.pt.
        On several processes rank 0 evaluates and the others wait."""
        recipe = self.recipe
        fid = dist.from_writer(self._measure(engine) if dist.is_writer() else None)
        if fid < recipe.best_fid:
            recipe.best_fid = fid
            engine.save(self.run_dir / "checkpoints" / "best.pt")

    def _measure(self, engine: Engine) -> float:
        """Evaluate, log and show; the FID."""
        from ganforge.metrics.evaluate import evaluate_images

        t, recipe = self.cfg.train, self.recipe
        g = torch.Generator().manual_seed(t.seed + 777)
        z = torch.randn(t.eval_samples, self.cfg.model.z_dim, generator=g)
        y = draw_labels(recipe.ema, t.eval_samples, seed=t.seed + 778)
        full = evaluate_images(
            generate(recipe.ema, z, y),
            self.real,
            with_parzen=False,
            with_memorization=False,
            kid_subsets=10,
        )
        metrics = {f"eval/{k}": float(full[k]) for k in EVAL_KEYS}
        if engine.log is not None:
            engine.log.scalars(engine.step, metrics)
        if self.engine.progress:
            tqdm.write(
                f"step {engine.step}: FID {metrics['eval/fid']:.2f}, "
                f"{metrics['eval/classes_covered']:.0f} classes covered"
            )
        return float(full["fid"])

    def run(self) -> TrainResult:
        """Train until the configured length; Ctrl-C stops after the step with a checkpoint.
        The folder is locked against a second writer; a new run that diverges before its
        first checkpoint leaves no folder behind."""
        writer = dist.is_writer()
        with self.engine.writing(self.run_dir, "gan", self.cfg):
            self.engine.log = MetricsLog(self.run_dir, self.engine.step) if writer else None
            private = self.cfg.privacy.enabled
            if private:
                self._write_privacy()
            try:
                result = self.engine.run()
            finally:
                if self.engine.log is not None:
                    self.engine.log.close()
                if private:
                    self._write_privacy()
            if writer:
                plot_losses(read_metrics(self.run_dir), self.run_dir / "losses.png")
        images = result.steps_done * self.recipe.images_per_step
        return TrainResult(
            self.run_dir,
            result.steps,
            result.interrupted,
            result.seconds,
            images / max(result.seconds, 1e-9),
            result.last_stats,
        )


def default_run_dir(cfg: RunConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.data.name}-{cfg.model.network}-{stamp}"


def train(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    data: ImageSet | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a new run into ``run_dir`` (default ``runs/<data>-<network>-<time>``).

    Everything is validated (names, data, sizes) before the folder is created, so bad input
    leaves nothing behind.
    """
    dist.setup(pick_device(cfg.train.device))
    run_dir = dist.from_writer(Path(run_dir) if run_dir else default_run_dir(cfg))
    check_out_folder(run_dir, "gan")
    if (run_dir / LAST).exists():
        raise GanforgeError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} "
            "or pick another --out"
        )
    dist.barrier()  # every process has looked before rank 0 writes
    return Trainer(cfg, run_dir, data=data, progress=progress).run()


def resume(
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    data: ImageSet | None = None,
    progress: bool = True,
) -> TrainResult:
    """Continue a run from its last checkpoint, exactly where it stopped.

    ``overrides`` (``{"train": {"steps": 2000}}``) may extend the run or change the device;
    anything else (network, loss, seed, batch size ...) must stay that of the checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanforgeError(f"--resume takes a run folder; {run_dir} is not one")
    require_kind(run_dir, "gan")
    state = load_checkpoint(run_dir, kind="gan")

    saved = merge(RunConfig(), state["config"]).to_dict()  # older configs lack newer keys
    given = (overrides or {}).get("data", {})
    if "root" not in given and saved["data"]["root"]:
        # A path a checkpoint names is read, never downloaded into or created.
        if not Path(saved["data"]["root"]).is_dir():
            raise GanforgeError(
                f"the run's data folder {saved['data']['root']} is not a folder; pass "
                "--data-dir with the data"
            )
        overrides = {**(overrides or {}), "data": {**given, "download": False}}
    changed = {
        f"{section}.{key}"
        for section, values in (overrides or {}).items()
        for key, value in values.items()
        if saved.get(section, {}).get(key) != value
    }
    if "model.network" in changed:
        raise GanforgeError(
            f"the checkpoint was trained with network {saved['model']['network']!r}, "
            f"not {overrides['model']['network']!r}"
        )
    if changed - RESUMABLE:
        raise GanforgeError(
            "a resumed run keeps its configuration; cannot change "
            f"{', '.join(sorted(changed - RESUMABLE))} (only steps, epochs, device, amp, "
            "data location and logging cadence)"
        )
    cfg = merge(RunConfig.from_dict(saved), overrides or {})
    dist.setup(pick_device(cfg.train.device))
    dist.barrier()  # every process has read the checkpoint before rank 0 writes
    return Trainer(cfg, run_dir, data=data, checkpoint=state, progress=progress).run()
