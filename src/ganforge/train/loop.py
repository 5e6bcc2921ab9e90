"""The two-player game: k discriminator steps, then one generator step, repeated.

Everything concrete (networks, loss, data) is built from the config by name; the loop
only knows the interfaces. Statistics are accumulated on the device and read every
``log_every`` steps, so the hot path never waits for the device.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ganforge.config import RunConfig, resolve, save_yaml
from ganforge.data import ImageSet, load_dataset
from ganforge.data.sampler import EpochSampler
from ganforge.errors import GanforgeError
from ganforge.losses import build_loss
from ganforge.nets import NETWORKS, DataSpec, build_networks, generate
from ganforge.train.checkpoint import LAST, load_state, save_checkpoint
from ganforge.train.device import amp_dtype, autocast, channels_last, pick_device
from ganforge.train.ema import EMA
from ganforge.train.metrics_log import MetricsLog, read_metrics
from ganforge.viz import grid_image, plot_losses, save_image

STAT_NAMES = ("loss_d", "loss_g", "d_real", "d_fake")


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
    """Holds the players, their optimizers and the data; ``run()`` plays the game."""

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
        self.progress = progress
        t = cfg.train
        self.device = pick_device(t.device)
        self.amp = amp_dtype(t.amp, self.device)
        torch.manual_seed(t.seed)

        if data is None:
            d = cfg.data
            data = load_dataset(d.name, d.root, d.image_size, d.channels, d.download, d.limit)
        self.spec: DataSpec = data.spec
        self.class_names = data.class_names
        self.total_steps = cfg.total_steps(len(data))
        self.data = data.to(self.device)
        try:
            self.sampler = EpochSampler(len(data), t.batch_size, t.seed, self.device)
        except ValueError as err:
            raise GanforgeError(str(err)) from None

        m = cfg.model
        g, d = build_networks(m.network, self.spec, m.z_dim, m.width)
        family = NETWORKS.get(m.network)
        if checkpoint is None and family.init_from_data is not None:
            family.init_from_data(g, data.images.float().mean(0) / 127.5 - 1)
        self.g, self.d = g.to(self.device), d.to(self.device)
        if channels_last(self.d):
            channels_last(self.g)
            self.data.images = self.data.images.contiguous(memory_format=torch.channels_last)
        self.conditional = g.num_classes > 0
        self.ema = EMA(self.g, t.ema_decay)
        self.loss = build_loss(cfg.loss.name)
        self.opt_g, self.opt_d = self._optimizer(self.g), self._optimizer(self.d)
        fp16 = self.amp == torch.float16
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.z_fixed, self.y_fixed = fixed_noise(t.num_samples, m.z_dim, g.num_classes, t.seed)
        self.step = 0
        self.best_fid = math.inf
        self.real = self._eval_data() if t.eval_every else None
        if checkpoint is not None:
            self._restore(checkpoint)

    # -- set-up -----------------------------------------------------------------------------
    def _eval_data(self):
        """The real MNIST side of in-training evaluation, loaded before any output is written."""
        from ganforge.metrics.evaluate import load_real

        if (self.spec.channels, self.spec.image_size) != (1, 28):
            raise GanforgeError(
                "--eval-every measures against MNIST: it needs 28x28 grayscale data"
            )
        return load_real(self.cfg.data.root, download=self.cfg.data.download)

    def _optimizer(self, module: torch.nn.Module) -> torch.optim.Optimizer:
        o = self.cfg.optim
        if o.optimizer == "adam":
            # One fused kernel per step instead of several ops per parameter: +8% DCGAN
            # images/s on 2 CPU cores (benchmarks/README.md). MPS has no fused Adam.
            fused = self.device.type in ("cpu", "cuda")
            return torch.optim.Adam(
                module.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), fused=fused
            )
        return torch.optim.SGD(module.parameters(), lr=o.lr, momentum=o.momentum)

    def state_dict(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.device.type == "mps":
            rng["mps"] = torch.mps.get_rng_state()
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "data_spec": vars(self.spec).copy(),
            "class_names": list(self.class_names),
            "generator": self.g.state_dict(),
            "discriminator": self.d.state_dict(),
            "ema": self.ema.model.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "sampler": self.sampler.state_dict(),
            "best_fid": self.best_fid,
            "rng": rng,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        net = self.cfg.model.network
        if state["config"]["model"]["network"] != net:
            raise GanforgeError(
                f"the checkpoint was trained with network {state['config']['model']['network']!r}, "
                f"not {net!r}"
            )
        if DataSpec(**state["data_spec"]) != self.spec:
            raise GanforgeError(
                f"the checkpoint was trained on data shaped {state['data_spec']}, "
                f"but this dataset is {vars(self.spec)}"
            )
        load_state(self.g, state["generator"], "generator", net)
        load_state(self.d, state["discriminator"], "discriminator", net)
        load_state(self.ema.model, state["ema"], "EMA generator", net)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        self.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        if "mps" in state["rng"] and self.device.type == "mps":
            torch.mps.set_rng_state(state["rng"]["mps"])
        self.step = int(state["step"])
        self.best_fid = float(state.get("best_fid", math.inf))

    # -- the game ---------------------------------------------------------------------------
    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.model.z_dim, device=self.device)

    def train_step(self, acc: torch.Tensor) -> None:
        """One generator step after ``k`` discriminator steps; adds stats to ``acc``."""
        k, bs = self.cfg.train.k, self.cfg.train.batch_size
        g, d, loss = self.g, self.d, self.loss
        d.requires_grad_(True)
        for i in range(k):
            real, labels = self.data.batch(self.sampler.next())
            labels = labels if self.conditional else None
            last = i == k - 1
            with autocast(self.device, self.amp), torch.set_grad_enabled(last):
                # The last fake batch keeps its graph and is reused for the generator step.
                fake = g(self._noise(bs), labels)
            with autocast(self.device, self.amp):
                d_terms = loss.discriminator(d, real, fake.detach(), labels)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(d_terms.loss).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
        d.requires_grad_(False)  # no weight gradients for D during the G step
        with autocast(self.device, self.amp):
            g_terms = loss.generator(d, fake, labels)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(g_terms.loss).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self.step += 1
        self.ema.update(g, self.step)
        with torch.no_grad():
            acc += torch.stack(
                [
                    d_terms.loss.float(),
                    g_terms.loss.float(),
                    torch.sigmoid(d_terms.real_logits.float()).mean(),
                    torch.sigmoid(d_terms.fake_logits.float()).mean(),
                ]
            )

    @torch.inference_mode()
    def samples(self) -> torch.Tensor:
        """The EMA generator's images at the fixed noise, float NCHW in [-1, 1] on the CPU."""
        y = None if self.y_fixed is None else self.y_fixed.to(self.device)
        return self.ema.model(self.z_fixed.to(self.device), y).float().cpu()

    def _check_finite(self, stats: list[float]) -> None:
        if not all(math.isfinite(v) for v in stats):
            raise GanforgeError(
                f"training diverged (non-finite losses) by step {self.step}; the last "
                "checkpoint is kept. Try a lower --lr"
            )

    def save(self) -> None:
        save_checkpoint(self.run_dir / LAST, self.state_dict())

    def evaluate(self, log: MetricsLog) -> dict[str, float]:
        """FID, KID, precision/recall and coverage of the EMA generator at fixed noise (its own
        RNG, so training randomness is untouched); a new best FID also saves best.pt."""
        from ganforge.metrics.evaluate import evaluate_images

        n = self.cfg.train.eval_samples
        g = torch.Generator().manual_seed(self.cfg.train.seed + 777)
        z = torch.randn(n, self.cfg.model.z_dim, generator=g)
        y = torch.arange(n) % self.g.num_classes if self.conditional else None
        images = generate(self.ema.model, z, y)
        full = evaluate_images(
            images, self.real, with_parzen=False, with_memorization=False, kid_subsets=10
        )
        keys = (
            "fid",
            "kid",
            "precision",
            "recall",
            "classifier_score",
            "classes_covered",
            "confident_fraction",
        )
        metrics = {f"eval/{k}": float(full[k]) for k in keys}
        log.scalars(self.step, metrics)
        if full["fid"] < self.best_fid:
            self.best_fid = full["fid"]
            save_checkpoint(self.run_dir / "checkpoints" / "best.pt", self.state_dict())
        return metrics

    def _write_samples(self, log: MetricsLog) -> None:
        grid = grid_image(self.samples(), nrow=10)
        save_image(grid, self.run_dir / "samples" / f"step_{self.step:06d}.png", upscale=2)
        save_image(grid, self.run_dir / "samples.png", upscale=2)
        log.image("samples", grid.permute(2, 0, 1), self.step)

    def run(self) -> TrainResult:
        """Train until ``total_steps``; Ctrl-C stops after the current step with a checkpoint."""
        t = self.cfg.train
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(self.cfg, self.run_dir / "config.yaml")
        log = MetricsLog(self.run_dir, self.step)
        stop = {"asked": False}

        def on_sigint(signum, frame):
            if stop["asked"]:
                raise KeyboardInterrupt
            stop["asked"] = True

        # Ctrl-C (and a polite kill) finish the current step, checkpoint, and stop.
        signals = (signal.SIGINT, signal.SIGTERM) if _main_thread() else ()
        previous = {sig: signal.signal(sig, on_sigint) for sig in signals}
        acc = torch.zeros(len(STAT_NAMES), device=self.device)
        window_steps, window_start = 0, time.perf_counter()
        images_per_step = t.batch_size * t.k
        start_step, started = self.step, time.perf_counter()
        stats: dict[str, float] = {}
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not self.progress,
            desc="train",
            unit="step",
            dynamic_ncols=True,
        )
        try:
            while self.step < self.total_steps and not stop["asked"]:
                self.train_step(acc)
                window_steps += 1
                bar.update(1)
                if self.step % t.log_every == 0 or self.step == self.total_steps:
                    values = (acc / window_steps).tolist()  # the one host sync per window
                    elapsed = time.perf_counter() - window_start
                    self._check_finite(values)
                    stats = dict(zip(STAT_NAMES, values, strict=True))
                    stats["images_per_s"] = window_steps * images_per_step / max(elapsed, 1e-9)
                    log.scalars(self.step, stats)
                    bar.set_postfix(
                        img_s=f"{stats['images_per_s']:.0f}",
                        D=f"{stats['loss_d']:.3f}",
                        G=f"{stats['loss_g']:.3f}",
                        Dx=f"{stats['d_real']:.2f}",
                        DGz=f"{stats['d_fake']:.2f}",
                    )
                    acc.zero_()
                    window_steps, window_start = 0, time.perf_counter()
                if self.step % t.sample_every == 0:
                    self._write_samples(log)
                if t.eval_every and self.step % t.eval_every == 0:
                    eval_start = time.perf_counter()
                    metrics = self.evaluate(log)
                    bar.write(
                        f"step {self.step}: FID {metrics['eval/fid']:.2f}, "
                        f"{metrics['eval/classes_covered']:.0f} classes covered"
                    )
                    # Evaluation time is not training time: leave it out of images/s.
                    window_start += time.perf_counter() - eval_start
                    started += time.perf_counter() - eval_start
                if self.step % t.checkpoint_every == 0:
                    self._check_finite(acc.tolist())  # never checkpoint diverged weights
                    self.save()
            if self.step % t.checkpoint_every:  # the loop has not just saved this step
                self._check_finite(acc.tolist())
                self.save()
            if self.step % t.sample_every:
                self._write_samples(log)
        finally:
            bar.close()
            log.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        plot_losses(read_metrics(self.run_dir), self.run_dir / "losses.png")
        seconds = time.perf_counter() - started
        done = self.step - start_step
        return TrainResult(
            self.run_dir,
            self.step,
            stop["asked"],
            seconds,
            done * images_per_step / max(seconds, 1e-9),
            stats,
        )


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
