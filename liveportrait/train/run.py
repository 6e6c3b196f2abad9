"""One training run: the stage a config names, built, trained, the process group shut down. Apart from
``engine`` (the shared loop), which the stages import, so that no module imports one that imports it."""

from __future__ import annotations

import sys

from . import distributed as dist_utils
from .config import TrainConfig


def run_stage(cfg: TrainConfig, resume: str | None = "auto", log=print) -> int:
    """Build the stage the config names, train, shut the process group down."""
    from .stage1 import Stage1Trainer
    from .stage2 import Stage2Trainer

    info = dist_utils.init(cfg.device, cfg.backend)
    try:
        cls = Stage1Trainer if cfg.stage == "stage1" else Stage2Trainer
        trainer = cls(cfg, info, log=log)
        step = trainer.run(resume)
        # every rank reaches the end before any tears its connections down: a rank that closes its gloo
        # pairs while another still talks to it can abort the other at exit (seen once in CI, SIGABRT)
        dist_utils.barrier(info)
        return step
    finally:
        dist_utils.shutdown()
        sys.stdout.flush()
