"""``liveportrait train``: the two training stages, default configs, and exporting checkpoints.

    liveportrait train config stage1 -o stage1.toml      # every key with its default
    liveportrait train stage1 --config stage1.toml        # resumes from OUT_DIR/checkpoints if there
    torchrun --nproc_per_node 8 -m liveportrait.cli train stage1 --config stage1.toml
    liveportrait train stage2 --config stage2.toml        # base_weights = the stage-1 OUT_DIR/weights
    liveportrait train export OUT_DIR/checkpoints/step_00010000.pt -o weights/
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the networks (stage 1: F, M, W, G; stage 2: stitching and retargeting)",
        description="Train LivePortrait's networks on clips prepared with `liveportrait data prepare`. "
                    "Run under torchrun for several GPUs or nodes. Checkpoints resume exactly; weights are "
                    "exported in the released layout to OUT_DIR/weights, which `liveportrait animate --weights` loads.")
    sub = p.add_subparsers(dest="train_command", metavar="STAGE")
    for stage, text in (("stage1", "appearance, motion, warping and generator networks from scratch"),
                        ("stage2", "stitching and eye/lip retargeting with the base networks frozen")):
        s = sub.add_parser(stage, help=text, description=f"Train {stage}: {text}.")
        s.add_argument("--config", required=True, metavar="FILE", help="TOML or JSON config (see `train config`)")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set steps=1000 --set stage1.gan=0.5 (repeatable)")
        s.add_argument("--resume", default="auto", metavar="auto|none|CHECKPOINT",
                       help="auto: continue from the newest checkpoint in out_dir if any (default); none: start "
                            "over; or a checkpoint file")
        s.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
        s.set_defaults(func=run_stage, stage=stage)
    c = sub.add_parser("config", help="write the default config of a stage",
                       description="Write a TOML config holding every key with its default value.")
    c.add_argument("stage", choices=("stage1", "stage2"), help="the stage whose config to write")
    c.add_argument("-o", "--output", help="file to write (default: print it)")
    c.set_defaults(func=run_config)
    e = sub.add_parser("export", help="write a training checkpoint's networks in the released layout",
                       description="Write the networks of a training checkpoint as released-format .pth files.")
    e.add_argument("checkpoint", help="OUT_DIR/checkpoints/step_*.pt")
    e.add_argument("-o", "--output", required=True, help="weights folder to write")
    e.add_argument("--base-weights", help="stage-2 checkpoints: the frozen networks (default: the config's)")
    e.set_defaults(func=run_export)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def run_stage(args: argparse.Namespace) -> int:
    from ..train.config import load_config
    from ..train.run import run_stage as run

    cfg = load_config(args.config, args.overrides, stage=args.stage)
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    step = run(cfg, args.resume, log=log)
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        print(f"{args.stage}: at step {step}; weights in {Path(cfg.out_dir) / 'weights'}", flush=True)
    return 0


def run_config(args: argparse.Namespace) -> int:
    from ..train.config import default_toml

    text = default_toml(args.stage)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..train.checkpointing import export_weights, load_checkpoint
    from ..train.config import config_from_dict
    from ..train.engine import load_networks

    state = load_checkpoint(args.checkpoint)
    cfg = config_from_dict(state["config"])
    if state["stage"] == "stage1":
        nets = load_networks(cfg, None)
        nets.load_state_dict(state["modules"]["networks"])
    else:
        base = args.base_weights or cfg.base_weights
        if not base:
            raise InputError("a stage-2 checkpoint holds only S: give --base-weights (the stage-1 weights)")
        nets = load_networks(cfg, base)
        nets.S.load_state_dict(state["modules"]["retargeting"])
    export_weights(nets, args.output, {"stage": state["stage"], "step": state["step"], "model": cfg.model,
                                       "checkpoint": str(args.checkpoint)})
    print(f"wrote {args.output} ({state['stage']}, step {state['step']})")
    return 0
