"""``liveportrait benchmark``: how fast each backend animates on this machine."""

from __future__ import annotations

import argparse

from . import HelpFormatter, number

DEFAULT_BACKENDS = ("eager", "fast", "onnxruntime", "openvino")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "benchmark", help="time every stage of an animation for each backend and precision",
        description="Print, for full-size networks, milliseconds per frame of each stage (M, W, G, stitching, "
                    "crop, paste-back, decode, encode), end-to-end frames per second, peak memory and the "
                    "GFLOP/s each network reaches, one row per backend and precision. Without weights, "
                    "synthetic random weights of the released configuration are used (same speed).",
        formatter_class=HelpFormatter)
    p.add_argument("--weights", help="weights folder (default: the usual search path; 'synthetic' forces "
                                     "random weights; when none are found random weights are used and said so)")
    p.add_argument("--frames", type=number(int, 1), default=3, help="frames timed per stage (the median is shown)")
    p.add_argument("--backend", action="append", choices=("eager", "fast", "compile", "onnxruntime", "openvino",
                                                          "all"),
                   help="backend(s) to time; repeat for several (default: eager, fast and the installed "
                        "ONNX runtimes)")
    p.add_argument("--precision", action="append", choices=("auto", "fp32", "fp16", "bf16"),
                   help="precision(s); repeat for several. Default: fp32, plus what 'auto' picks on this machine "
                        "for the backend animate picks (bf16 with fast on a CPU with native bfloat16, fp16 with "
                        "eager on CUDA). bf16 applies to fast (CPU: G in bfloat16, W exact float32), eager and compile "
                        "(autocast); fp16 to eager and compile")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"), help="where the networks are timed")
    p.add_argument("--allocator", default="tuned", choices=("tuned", "default"),
                   help="C allocator setting of the timed rows: 'tuned' keeps freed memory for the next frame, as "
                        "animate, live and app do; 'default' leaves it as is. Eager fp32 is also timed with the "
                        "default allocator, the reference's way, as the baseline of the 'x eager' column")
    p.add_argument("--threads", type=number(int, 1), default=None, help="intra-op threads (default: all allowed CPUs)")
    p.add_argument("--image", help="source photo to animate (default: a synthetic picture)")
    p.add_argument("--video", help="driving video, already framed (default: a synthetic clip)")
    p.add_argument("--end-to-end", type=number(int, 0), default=0, metavar="ROUNDS",
                   help="rounds of whole animate jobs (the example photo and clip, animate's defaults: face found, "
                        "pasted back, encoded) timed for float32 eager, the reference's way, and for animate's "
                        "default, taking turns, each in its own process: wall and network seconds per frame "
                        "(default 0: none; at full size on a CPU an eager job takes minutes)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--in-process", action="store_true",
                   help="run every row in this process (faster to start; peak memory then accumulates)")
    p.add_argument("--model-config", default="released", choices=("released", "tiny"), help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def specs_from_args(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(backend, precision, allocator) rows; float32 eager with the default allocator comes first."""
    backends = args.backend or []
    if not backends or "all" in backends:
        backends = [b for b in DEFAULT_BACKENDS if b in ("eager", "fast") or _installed(b)]
    from ..speed.compute import pick_backend, resolve_precision

    device = getattr(args, "device", "cpu")
    auto = resolve_precision("auto", device)
    default_backend = pick_backend("auto", device, auto)
    precisions = [auto if p == "auto" else p for p in (args.precision or ["fp32"])]
    allocator = args.allocator
    specs = []
    for b in backends:
        wanted = list(dict.fromkeys(precisions))
        if not args.precision and auto != "fp32" and b == default_backend:
            wanted.append(auto)  # the default path of animate on this machine
        for prec in wanted:
            if prec != "fp32" and b not in ("eager", "compile") and not (prec == "bf16" and b == "fast"
                                                                          and device == "cpu"):
                continue  # the exported graphs are float32; the fast rewrites are float32 or (CPU) bfloat16
            if (b, prec) == ("eager", "fp32") and allocator != "default" and not args.in_process:
                specs.append((b, prec, "default"))
            specs.append((b, prec, allocator))
    return specs


def precision_note(device: str) -> str:
    """What precision "auto" resolves to here, and why."""
    from ..speed.compute import cpu_has_native_bf16, pick_backend, resolve_precision

    auto = resolve_precision("auto", device)
    backend = pick_backend("auto", device, auto)
    if device == "cpu":
        why = ("the CPU computes bfloat16 natively (avx512_bf16 or amx_bf16): G in bfloat16; W, M, F, S and "
               "the keypoints float32" if cpu_has_native_bf16() else
               "no native bfloat16 on this CPU (no avx512_bf16 or amx_bf16 flag): the exact float32 path")
    else:
        why = "half precision, float32 again if a frame has NaN/Inf" if auto == "fp16" else "float32"
    return f"{auto} with backend {backend} ({why})"


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from dataclasses import asdict

    from ..bench import compare_end_to_end, format_end_to_end, format_table, machine_description, run_rows
    from ..errors import InputError

    specs = specs_from_args(args)
    if not specs:
        raise InputError("no backend and precision to time (fp16 applies to eager and compile, bf16 to those "
                         "and to fast on the CPU)")
    if args.weights and args.weights != "synthetic":
        from ..networks.checkpoint import locate_weights

        locate_weights(args.weights)  # a wrong folder is one clear error here, not one per row
    for option, path in (("--image", args.image), ("--video", args.video)):
        if path and not os.path.isfile(path):
            raise InputError(f"{option} {path}: no such file")
    print(f"machine: {machine_description()}")
    print(f"precision 'auto' on {args.device}: {precision_note(args.device)}")
    print(f"timing {', '.join(f'{b}/{p} ({a} allocator)' for b, p, a in specs)} on {args.device}, "
          f"{args.frames} frame(s) each ...", flush=True)

    def echo(row):
        status = (f"{row.fps:.3f} fps" if row.fps else
                  f"~{row.fps_serial:.4f} fps (stage sum)" if row.fps_serial else "; ".join(row.notes))
        print(f"  {row.backend}/{row.precision} ({row.allocator} allocator): {status}", flush=True)

    rows = run_rows(specs, args.device, args.frames, args.weights, args.model_config, args.threads,
                    subprocesses=not args.in_process, image=args.image, video=args.video, echo=echo)
    print()
    print(format_table(rows))
    end_to_end = []
    if args.end_to_end:
        print(f"\ntiming whole animate jobs, {args.end_to_end} round(s) ...", flush=True)
        end_to_end = compare_end_to_end(args.end_to_end, args.device, args.frames, args.weights, args.model_config,
                                        args.threads, args.image, args.video)
        print(format_end_to_end(end_to_end, args.frames))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine_description(), "rows": [asdict(r) for r in rows],
                       "end_to_end": end_to_end}, fh, indent=1)
    return 0 if all(r.fps or r.fps_serial for r in rows) else 1
