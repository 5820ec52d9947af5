"""Every registered method on one source → target pair, several seeds, equal step budget.

    python scripts/compare_methods.py --out results/sketches_faces64      # the default pair below
    python scripts/compare_methods.py --source fsgen/dcgan-digiface64 --target ../shared/data/tenshot/babies \\
        --out results/babies

Per run (own subprocess, so peak memory is its own): adapt with ``fsgen_hub.AdaptationTrainer``, then
SWD against ``--reference`` (with the 10 shots removed from it by content), MS-SSIM diversity and the
memorisation share of 500 samples, plus FID/intra-LPIPS when their weights are present; wall time and
peak memory. Writes ``results.json``, ``table.md`` (mean ± std over seeds), ``bars.png`` (error bars)
and ``grid_<method>.png`` (seed 0, the same latents for every method). Finished runs are kept in
``results.json``, so an interrupted comparison resumes where it stopped.

Default pair: the project's StyleGAN2 faces source (``fsgen/stylegan2-faces64``, with its
discriminator) → ``../shared/data/tenshot/sketches``, SWD against ``../shared/data/cufs_sketches``.
``--jobs 2`` runs two workers at once with one thread each (on small CPU models that is faster than
one worker with two threads); every run of a table then has the same conditions.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parent.parent / "shared" / "data"
DEFAULT_SOURCE = "fsgen/stylegan2-faces64"
DEFAULT_TARGET, DEFAULT_REFERENCE = SHARED_DATA / "tenshot" / "sketches", SHARED_DATA / "cufs_sketches"
METRICS = ["swd", "msssim_diversity", "memorization"]
OPTIONAL = ["fid5k", "intra_lpips1k"]  # need Inception / LPIPS weights: skipped when absent
SOURCE_ROW = "source (no adaptation)"


def worker(args) -> dict:
    import resource

    import torch

    from fsgen_hub.errors import MissingWeightsError
    from fsgen_hub.hub import AutoGenerator
    from fsgen_hub.metrics import evaluate
    from fsgen_hub.training.grids import save_image_grid

    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        if args.worker == SOURCE_ROW:  # the unadapted source: where every method starts
            run, wall = args.source, 0.0
        else:
            run, wall = _adapt(args, tmp)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
        G = AutoGenerator.from_pretrained(run)
        reference = args.reference or args.target
        exclude = args.target if args.reference else None  # the shots are the reference when none is given
        results = {r.metric: r.value for r in evaluate(G, reference, METRICS, num_samples=args.num_samples, shots=args.target,
                                                       seed=1000 + args.seed, exclude_from_reference=exclude)}
        for name in OPTIONAL:
            try:
                results.update({r.metric: r.value for r in evaluate(G, reference, [name], shots=args.target,
                                                                    seed=1000 + args.seed, exclude_from_reference=exclude)})
            except MissingWeightsError:
                pass
        if args.seed == 0:
            z = G.make_latents(16, seed=123)
            name = "source" if args.worker == SOURCE_ROW else args.worker
            save_image_grid(G.sample(16, z=z, seed=123, output_type="pt"), out_dir / f"grid_{name}.png", nrow=8)
    return {"method": args.worker, "seed": args.seed, "wall_s": wall, "peak_mb": peak, **results}


def _adapt(args, tmp) -> tuple[Path, float]:
    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import AdaptationTrainer

    targs = TrainingArguments(source=args.source, data=args.target, shots=10, method=args.worker, steps=args.steps,
                              batch_size=args.batch_size, seed=args.seed, output_dir=str(Path(tmp) / "run"),
                              save_every=0, sample_every=0, log_every=50, device=args.device,
                              no_eval=True)  # evaluated below with the comparison protocol
    t0 = time.time()
    run = AdaptationTrainer(targs).train()
    return run, time.time() - t0


def _shown(path: str) -> str:
    """A data path as the table shows it: relative to the working directory (no home paths in results)."""
    return os.path.relpath(path) if Path(path).is_absolute() else path


def summarise(rows: list[dict]) -> tuple[str, dict]:
    methods = sorted(dict.fromkeys(r["method"] for r in rows), key=lambda m: (m != SOURCE_ROW, m))
    metrics = [k for k in rows[0] if k not in ("method", "seed")]
    stats = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        stats[method] = {}
        for m in metrics:
            values = [r[m] for r in mine if m in r]
            if values:
                stats[method][m] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    header = "| method | " + " | ".join(metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 1)]
    for method in methods:
        cells = []
        for m in metrics:
            if m in stats[method]:
                mean, std = stats[method][m]
                cells.append(f"{mean:.3g} ± {std:.2g}")
            else:
                cells.append("n/a")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines), stats


def plot(stats: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("swd", "msssim_diversity", "memorization") if any(m in s for s in stats.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4))
    axes = axes if len(metrics) > 1 else [axes]
    methods = list(stats)
    for ax, metric in zip(axes, metrics):
        means = [stats[m].get(metric, (float("nan"), 0))[0] for m in methods]
        stds = [stats[m].get(metric, (0, 0))[1] for m in methods]
        ax.bar(range(len(methods)), means, yerr=stds, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        better = "higher" if metric == "msssim_diversity" else "lower"
        ax.set_title(f"{metric} ({better} is better)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"zoo id or folder (default: {DEFAULT_SOURCE})")
    parser.add_argument("--target", default=None, help=f"folder of the 10 shots (default: {DEFAULT_TARGET})")
    parser.add_argument("--reference", default=None,
                        help="reference folder for SWD (default: cufs_sketches for the default target, "
                             "else the shots themselves)")
    parser.add_argument("--methods", default=None, help="comma-separated; default: every registered method")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="workers run at once (threads are split between them)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.target is None:
        args.target = str(DEFAULT_TARGET)
        args.reference = args.reference or str(DEFAULT_REFERENCE)
    for path in (args.target, args.reference):
        if path and not Path(path).is_dir():
            sys.exit(f"{path} is not a folder (the shared data lives in ../shared/data)")
    if args.jobs < 1:
        sys.exit("--jobs must be at least 1")
    from fsgen_hub.methods.base import list_methods

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = [SOURCE_ROW] + (args.methods.split(",") if args.methods else list(list_methods()))
    seeds = [int(s) for s in args.seeds.split(",")]
    results_file = out / "results.json"
    rows = json.loads(results_file.read_text()) if results_file.exists() else []  # resumable: finished runs are kept
    done = {(r["method"], r["seed"]) for r in rows}
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    common = [f"--source={args.source}", f"--target={args.target}", f"--steps={args.steps}",
              f"--batch-size={args.batch_size}", f"--num-samples={args.num_samples}", f"--device={args.device}",
              f"--out={out}", f"--threads={threads}"]
    common += [f"--reference={args.reference}"] if args.reference else []
    todo = [(method, seed) for seed in seeds for method in methods
            if (method, seed) not in done and (method != SOURCE_ROW or seed == seeds[0])]

    def run_one(job: tuple[str, int]) -> dict | None:
        method, seed = job
        proc = subprocess.run([sys.executable, __file__, "--worker", method, f"--seed={seed}", *common],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else str(proc.returncode)
            print(f"{method} seed {seed}: FAILED: {last}", file=sys.stderr)
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(args.jobs) as pool:  # threads only wait on the worker subprocesses
        for future in as_completed([pool.submit(run_one, job) for job in todo]):  # record each run as it ends
            row = future.result()
            if row is None:
                continue
            rows.append(row)
            results_file.write_text(json.dumps(rows, indent=1))
            print(f"{row['method']} seed {row['seed']}: " + ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                                    if isinstance(v, float)), file=sys.stderr)
    if not rows:
        sys.exit("no run finished")
    table, stats = summarise(rows)
    title = f"{args.source} → {Path(args.target).name}: {args.steps} steps, batch {args.batch_size}, seeds {args.seeds}"
    reference = _shown(args.reference) if args.reference else f"{_shown(args.target)} (the shots themselves)"
    without = " without the shots" if args.reference else ""
    conditions = f"{args.jobs} worker(s) at once, {threads} thread(s) each, device {args.device}"
    text = f"{title}; SWD vs {reference}{without}, {args.num_samples} samples; {conditions}\n\n{table}\n"
    (out / "table.md").write_text(text)
    plot(stats, out / "bars.png", title)
    print(text)


if __name__ == "__main__":
    main()
