"""Time training steps of both stages on random batches (no data needed).

    python benchmarks/bench_train.py                         # tiny networks, 128-pixel inputs, CPU
    python benchmarks/bench_train.py --model released --input-size 256 --batch-size 4 --device cuda --precision bf16

Prints seconds per optimiser step and samples per second for stage 1 (every loss on, random
perceptual backbone) and stage 2.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from liveportrait.networks import ModelConfig
from liveportrait.train import distributed as dist_utils
from liveportrait.train.config import config_from_dict
from liveportrait.train.engine import output_size
from liveportrait.train.landmarks import NUM_LANDMARKS


def random_batch(b: int, size: int, out: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    lm = torch.rand(b, NUM_LANDMARKS, 2, generator=g) * 1.2 - 0.6
    batch = {"source": torch.rand(b, 3, size, size, generator=g), "driving": torch.rand(b, 3, size, size, generator=g),
             "cross": torch.rand(b, 3, size, size, generator=g),
             "source_target": torch.rand(b, 3, out, out, generator=g),
             "driving_target": torch.rand(b, 3, out, out, generator=g),
             "source_lm": lm, "driving_lm": lm, "source_lm_valid": torch.ones(b, dtype=torch.bool),
             "driving_lm_valid": torch.ones(b, dtype=torch.bool), "source_pose": torch.zeros(b, 3),
             "driving_pose": torch.zeros(b, 3), "source_pose_valid": torch.ones(b, dtype=torch.bool),
             "driving_pose_valid": torch.ones(b, dtype=torch.bool), "source_eye": torch.full((b, 2), 0.3),
             "driving_eye": torch.full((b, 2), 0.2), "source_lip": torch.full((b, 1), 0.1),
             "driving_lip": torch.full((b, 1), 0.4), "source_mask": torch.ones(b, 1, out, out) * 0.5}
    return {k: v.to(device) for k, v in batch.items()}


def bench(stage: str, args, base_dir: str | None) -> str | None:
    from liveportrait.train.stage1 import Stage1Trainer
    from liveportrait.train.stage2 import Stage2Trainer

    cfg = config_from_dict({
        "stage": stage, "model": args.model, "out_dir": tempfile.mkdtemp(), "batch_size": args.batch_size,
        "precision": args.precision, "device": args.device, "base_weights": base_dir,
        "data": {"root": "unused", "input_size": args.input_size},
        "perceptual": {"arch": "vgg19" if args.model == "released" else "tiny", "allow_random": True},
    })
    info = dist_utils.init(cfg.device, cfg.backend)
    trainer = (Stage1Trainer if stage == "stage1" else Stage2Trainer)(cfg, info, log=lambda *a: None)
    out = output_size(ModelConfig.named(args.model), args.input_size)
    batch = random_batch(args.batch_size, args.input_size, out, info.device)
    times = []
    for step in range(args.warmup + args.steps):
        if info.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        trainer.train_step([batch], step)
        if info.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    dt = sum(times[args.warmup:]) / args.steps
    mem = f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if info.device.type == "cuda" else ""
    print(f"{stage}: {args.model} nets, input {args.input_size}, batch {args.batch_size}, {args.precision} on "
          f"{info.device}: {dt:.3f} s/step, {args.batch_size / dt:.2f} samples/s{mem}")
    if stage == "stage1":
        trainer.export()
        return str(trainer.out_dir / "weights")
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", choices=("tiny", "released"))
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = bench("stage1", args, None)
    bench("stage2", args, weights)


if __name__ == "__main__":
    main()
