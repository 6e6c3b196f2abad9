"""What both stages share: the loop, data loading, precision, accumulation, logs, checkpoints.

A stage subclasses ``Trainer`` and fills in ``build`` (networks, losses, optimisers),
``train_step`` (one optimiser step over its micro-batches) and ``modules``/``optimizers`` (what a
checkpoint holds).  The loop feeds micro-batches from ``PairDataset`` through
``StepBatchSampler`` so that step N always sees the same samples; in-step randomness comes from
``step_generator(step, micro)``; together with the saved states this makes a resumed run repeat
an uninterrupted one exactly (bit for bit on CPUs; GPUs add their own nondeterministic kernels
unless ``deterministic = true``).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError, LivePortraitError
from ..networks import LivePortraitNetworks, ModelConfig
from ..networks.checkpoint import resolve_layout
from . import checkpointing as ckpt
from . import distributed as dist_utils
from .config import TrainConfig
from .data import PairDataset, StepBatchSampler

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def output_size(model: ModelConfig, input_size: int) -> int:
    """Side of the generator's output for a given input side (512 for 256 with the released nets)."""
    volume = input_size // 2 ** model.appearance.num_down_blocks
    return volume * 4 * model.generator.upscale


def load_networks(cfg: TrainConfig, folder: str | None) -> LivePortraitNetworks:
    """Networks of ``cfg.model``: from a released-layout folder when given, else seeded random."""
    mc = ModelConfig.named(cfg.model)
    if not folder:
        torch.manual_seed(cfg.seed)
        return LivePortraitNetworks(mc)
    layout = resolve_layout(folder)
    if layout.missing():
        raise InputError(f"{folder}: not a weights folder (missing {', '.join(str(p) for p in layout.missing())}); "
                         "give the folder stage 1 exported (OUT_DIR/weights) or the released weights")
    return LivePortraitNetworks.from_pretrained(folder, mc, locate=False)


class MetricLogger:
    """metrics.jsonl (always) and TensorBoard (when installed and enabled), on the main process."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.writer = None
        self.path = out_dir / "logs" / "metrics.jsonl"
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("TensorBoard is not installed (pip install tensorboard): metrics go to "
                              f"{self.path} only", RuntimeWarning, stacklevel=2)
            else:
                self.writer = SummaryWriter(log_dir=str(out_dir / "logs"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values}, sort_keys=True) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def image(self, step: int, name: str, image: torch.Tensor) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image(name, image.clamp(0, 1), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The logged records, the last one per step (a resumed run logs some steps again)."""
    path = Path(out_dir) / "logs" / "metrics.jsonl"
    by_step: dict[int, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                by_step[rec["step"]] = rec
    return [by_step[k] for k in sorted(by_step)]


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to checkpoint and stop at the next step boundary."""

    def __init__(self):
        self.requested = False
        self._old: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second signal: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _mean(values: list) -> float:
    """Mean of per-step metrics (numbers or tensors on any device), read only when logging."""
    return float(torch.stack([torch.as_tensor(v).detach().double().cpu().reshape(()) for v in values]).mean())


def to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    stage = ""

    def __init__(self, cfg: TrainConfig, info: dist_utils.DistInfo | None = None, log=print):
        self.cfg = cfg
        self.info = info or dist_utils.init(cfg.device, cfg.backend)
        self.device = self.info.device
        self._say = log if self.info.main else (lambda *_a, **_k: None)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.backends.cudnn.benchmark = not cfg.deterministic
        if cfg.deterministic:
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)
        if cfg.precision == "fp16" and self.device.type == "cpu":
            raise InputError("fp16 training needs a GPU; use precision = \"bf16\" or \"fp32\" on CPUs")
        if cfg.sync_batchnorm and self.device.type != "cuda":
            raise InputError("sync_batchnorm needs GPUs (SyncBatchNorm has no CPU implementation)")
        self.model_config = ModelConfig.named(cfg.model)
        self.input_size = cfg.data.input_size
        self.output_size = output_size(self.model_config, self.input_size)
        self.out_dir = Path(cfg.out_dir)
        self.step = 0
        self.preview: dict[str, torch.Tensor] = {}
        self.base_lrs: dict[str, float] = {}  # optimiser name -> rate before warm-up and milestones
        self.build()

    # -- to be provided by a stage ------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def modules(self) -> dict[str, nn.Module]:
        """Everything with state that a checkpoint must hold."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def scalers(self) -> dict[str, torch.amp.GradScaler]:
        return {}

    def trained(self) -> list[nn.Module]:
        """The modules whose replicas must agree across processes."""
        return list(self.modules().values())

    def dataset(self) -> PairDataset:
        raise NotImplementedError

    def train_step(self, batches: list[dict], step: int) -> dict:
        """One optimiser step; returns metrics as numbers or (detached) tensors, read when logged."""
        raise NotImplementedError

    def networks(self) -> LivePortraitNetworks:
        raise NotImplementedError

    # -- shared helpers ------------------------------------------------------------------------
    def autocast(self):
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=AMP_DTYPES[self.cfg.precision])

    def make_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.cfg.precision == "fp16")

    def make_optimizer(self, name: str, params, lr: float) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        if not params:
            raise InputError(f"{self.stage}: nothing to train")
        opt = torch.optim.Adam(params, lr=lr, betas=tuple(self.cfg.betas), weight_decay=self.cfg.weight_decay)
        self.base_lrs[name] = lr
        for g in opt.param_groups:
            g["base_lr"] = lr
        return opt

    def lr_factor(self, step: int) -> float:
        c = self.cfg
        f = 1.0
        if c.warmup_steps > 0:
            f = min(1.0, (step + 1) / c.warmup_steps)
        for m in c.lr_milestones:
            if step >= m:
                f *= c.lr_gamma
        return f

    def set_lr(self, step: int) -> float:
        f = self.lr_factor(step)
        for opt in self.optimizers().values():
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * f
        return self.cfg.lr * f

    def step_generator(self, step: int, micro: int) -> torch.Generator:
        """A CPU generator determined by (seed, step, micro-step, rank): in-step randomness that
        resuming reproduces."""
        s = np.random.SeedSequence([self.cfg.seed, step, micro, self.info.rank]).generate_state(2, np.uint64)
        return torch.Generator().manual_seed(int(s[0] >> np.uint64(1)))

    def optimizer_step(self, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> torch.Tensor | float:
        """Unscale, clip, step, update; returns the gradient norm (0 when not clipping)."""
        norm = 0.0
        if self.cfg.grad_clip > 0:
            scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip).detach()
        scaler.step(opt)
        scaler.update()
        return norm

    def make_loader(self, start_step: int):
        c = self.cfg
        sampler = StepBatchSampler(start_step, c.steps, c.grad_accum, c.batch_size, self.info.rank,
                                   self.info.world_size)
        return torch.utils.data.DataLoader(
            self.dataset(), batch_sampler=sampler, num_workers=c.data.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False)

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "stage": self.stage,
            "config": self.cfg.to_dict(),
            "world_size": self.info.world_size,
            "modules": {k: dist_utils.unwrap(m).state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers().items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("stage") != self.stage:
            raise InputError(f"the checkpoint is from {state.get('stage')}, not {self.stage}")
        model = state.get("config", {}).get("model")
        if model != self.cfg.model:
            raise InputError(f"the checkpoint holds {model!r} networks, the config asks for {self.cfg.model!r}")
        if state.get("world_size", 1) * state["config"]["batch_size"] * state["config"]["grad_accum"] != \
                self.info.world_size * self.cfg.batch_size * self.cfg.grad_accum:
            self._say("note: the global batch differs from the checkpoint's: training continues with other samples")
        try:
            for k, m in self.modules().items():
                dist_utils.unwrap(m).load_state_dict(state["modules"][k])
            for k, o in self.optimizers().items():
                o.load_state_dict(state["optimizers"][k])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise InputError(f"the checkpoint does not fit this config ({str(exc).splitlines()[0][:200]}); "
                             "start over with --resume none or restore the config it was trained with") from None
        for k, o in self.optimizers().items():
            for g in o.param_groups:  # the rate comes from the config, which may change on resume
                g["base_lr"] = self.base_lrs[k]
        for k, s in self.scalers().items():
            if k in state.get("scalers", {}):
                s.load_state_dict(state["scalers"][k])
        self.step = int(state["step"])

    def export(self) -> Path:
        folder = self.out_dir / ckpt.WEIGHTS
        return ckpt.export_weights(self.networks(), folder, {"stage": self.stage, "step": self.step,
                                                             "model": self.cfg.model,
                                                             "input_size": self.input_size})

    def save(self) -> Path:
        return ckpt.save_checkpoint(self.out_dir, self.step, self.state_dict(), self.cfg.keep_checkpoints)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, resume: str | None = "auto") -> int:
        """Train up to ``cfg.steps``; returns the step reached."""
        c = self.cfg
        path = ckpt.resolve_resume(self.out_dir, resume)
        if path is not None:
            self.load_state_dict(ckpt.load_checkpoint(path))
            self._say(f"resumed from {path} at step {self.step}")
        if self.info.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n", encoding="utf-8")
        if self.step >= c.steps:
            self._say(f"already at step {self.step} of {c.steps}: nothing to do")
            return self.step
        logger = MetricLogger(self.out_dir, self.info.main, c.tensorboard)
        loader = self.make_loader(self.step)
        it = iter(loader)
        acc: dict[str, list[float]] = {}
        t_last, n_last = time.perf_counter(), 0
        stopped = False
        try:
            with _StopFlag() as stop:
                for step in range(self.step, c.steps):
                    batches = [to_device(next(it), self.device) for _ in range(c.grad_accum)]
                    lr = self.set_lr(step)
                    metrics = self.train_step(batches, step)
                    self.step = step + 1
                    for k, v in metrics.items():
                        acc.setdefault(k, []).append(v)
                    n_last += 1
                    last = self.step == c.steps
                    if self.step % c.log_every == 0 or last or self.step == 1:
                        values = dist_utils.mean_over_ranks({k: _mean(v) for k, v in acc.items()}, self.info)
                        dt = (time.perf_counter() - t_last) / max(n_last, 1)
                        values.update({"lr": lr, "time/step_s": dt, "samples_per_s":
                                       c.batch_size * c.grad_accum * self.info.world_size / max(dt, 1e-9)})
                        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
                        if bad:
                            raise LivePortraitError(
                                f"step {self.step}: {', '.join(bad)} became NaN/Inf; lower lr (or use bf16/fp32) "
                                "and resume from the last checkpoint")
                        logger.scalars(self.step, values)
                        self._say(f"{self.stage} step {self.step}/{c.steps} " + " ".join(
                            f"{k}={v:.4g}" for k, v in values.items() if k.startswith("loss/")))
                        acc, t_last, n_last = {}, time.perf_counter(), 0
                    if c.image_every and self.step % c.image_every == 0 and self.preview:
                        for name, img in self.preview.items():
                            logger.image(self.step, name, img.detach().float().cpu())
                    stopped = dist_utils.any_rank(stop.requested, self.info)
                    if self.step % c.checkpoint_every == 0 or last or stopped:
                        if self.info.main:
                            self.save()
                        dist_utils.barrier(self.info)
                    if self.step % c.export_every == 0 or last or stopped:
                        if self.info.main:
                            self.export()
                        dist_utils.barrier(self.info)
                    if stopped:
                        self._say(f"stopped at step {self.step}; run the same command again to resume")
                        break
            if self.info.distributed:
                div = dist_utils.replica_divergence(self.trained(), self.info)
                logger.scalars(self.step, {"replica_max_abs_diff": div})
                if div != 0.0:
                    self._say(f"warning: replicas differ by up to {div:g}")
        finally:
            logger.close()
            del it, loader
        return self.step
