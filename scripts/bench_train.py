"""Training step time and peak memory of every method, relative to ``finetune``, in one run.

    python scripts/bench_train.py [--methods finetune,dap,...] [--steps 40] [--batch-size 8]
                                  [--source fsgen/dcgan-digiface64] [--data DIR] [--device cpu|cuda]

Each method trains in its own subprocess (so the peak memory of one does not hide another's) on the
same source, data, seed and batch size. Step time is the mean wall time per step after the first
``--skip`` steps (periodic work such as RICK's Fisher passes is included); peak memory is the
process's peak resident set (CPU) or peak CUDA allocation (GPU) above what it held before training.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import markdown_table  # noqa: E402

# short schedules so that pruning decisions happen inside a benchmark-length run
BENCH_OPTIONS = {"rick": {"interval": 20}, "dap": {"interval": 20}, "d3t": {"inversion_steps": 20}}
BENCH_TRAINING = {"rick": {"warmup_steps": 5}, "dap": {"warmup_steps": 5}}  # RICK's recipe warms up for 250 steps


def worker(method: str, args) -> dict:
    import resource

    import torch

    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import AdaptationTrainer
    from fsgen_hub.utils.io import read_jsonl

    device = torch.device(args.device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(source=args.source, data=args.data, method=method, method_options=BENCH_OPTIONS.get(method, {}),
                                  steps=args.steps, batch_size=args.batch_size, output_dir=str(Path(tmp) / "run"),
                                  save_every=0, sample_every=0, log_every=1, seed=0, device=args.device,
                                  no_eval=True,  # step time only: no end-of-run evaluation
                                  **BENCH_TRAINING.get(method, {}))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        out = AdaptationTrainer(targs).train()
        log = read_jsonl(out / "logs" / "train_log.jsonl")
    times = [b["time_s"] - a["time_s"] for a, b in zip(log, log[1:])][args.skip:]
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before)
    return {"method": method, "step_s": sum(times) / len(times), "peak_mb": peak}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=None, help="comma-separated; default: every registered method")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--skip", type=int, default=5, help="first steps left out of the mean (warm-up)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--source", default=None, help="default: the zoo's DigiFace DCGAN (64 px)")
    parser.add_argument("--data", default=None, help="default: the embedded 10 emoji faces")
    parser.add_argument("--device", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    from fsgen_hub.methods.base import list_methods

    methods = args.methods.split(",") if args.methods else ["finetune"] + [m for m in list_methods() if m != "finetune"]
    if methods[0] != "finetune":
        methods = ["finetune"] + [m for m in methods if m != "finetune"]
    rows = []
    passthrough = [f"--steps={args.steps}", f"--skip={args.skip}", f"--batch-size={args.batch_size}", f"--device={args.device}"]
    passthrough += [f"--source={args.source}"] if args.source else []
    passthrough += [f"--data={args.data}"] if args.data else []
    for method in methods:
        proc = subprocess.run([sys.executable, __file__, "--worker", method, *passthrough], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{method}: failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{method}: {row['step_s'] * 1000:.0f} ms/step, peak +{row['peak_mb']:.0f} MB", file=sys.stderr)
    base = rows[0]
    for row in rows:
        row["step time vs finetune"] = row["step_s"] / base["step_s"]
        row["peak memory vs finetune"] = row["peak_mb"] / base["peak_mb"] if base["peak_mb"] > 0 else float("nan")
        row["ms/step"] = row["step_s"] * 1000
        row["peak MB"] = row["peak_mb"]
    from _bench_common import hardware

    print(f"hardware: {hardware(torch.device(args.device))}; {args.steps} steps, batch {args.batch_size}, "
          f"mean of steps {args.skip}..{args.steps - 1}\n")
    print(markdown_table(rows, ["method", "ms/step", "step time vs finetune", "peak MB", "peak memory vs finetune"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
