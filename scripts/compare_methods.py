"""Methods (and variants) on one source → target pair, several seeds, evaluated along training.

    python scripts/compare_methods.py --jobs 2 --out results/sketches_recipes         # the default pair below
    python scripts/compare_methods.py --source fsgen/dcgan-digiface64 --target ../shared/data/tenshot/babies \\
        --methods finetune,rick,dap,cdc --variant dap_static=dap:dynamic=false --out results/digiface_babies

Protocol. Every run (own subprocess, so peak memory is its own) adapts with
``fsgen_hub.AdaptationTrainer`` for ``--steps`` (default 1,000) and the trainer evaluates its EMA
generator every ``--eval-every`` steps and at the end: SWD against ``--reference`` with the 10 shots
removed from it by content (a held-out reference), MS-SSIM diversity, memorisation (the fixed-threshold
share and the calibrated share / median ratio), source ↔ adapted ``correspondence`` and ``collapse``
(diversity ratio to the source and effective number of modes), on ``--eval-samples`` samples and 100
latents shared with the source. The trainer keeps the checkpoint with the lowest SWD; with
``--patience P`` a run stops once SWD has not improved for P evaluations. The unadapted source is
evaluated the same way (step 0 of every curve).

Outputs in ``--out``: ``results.json`` (every run: its curve, final and best numbers),
``table.md`` (mean ± std over seeds: final numbers, then best-checkpoint numbers — that selection
uses the evaluation set, as RICK and AdAM select by FID), ``curves.png`` (each metric against steps,
mean over seeds ± std band per method), ``bars.png`` (final numbers), ``grid_<method>.png``
(seed 0, the exported = best-checkpoint generator, the same latents for every method) and
``source_vs_adapted.png`` (source row on top, each method below, the same latents).

Resumable: finished runs are recorded in ``results.json`` as they end and never run twice; a run
killed midway restarts from its last checkpoint (``runs/<method>-seed<k>/``, one per evaluation)
through the trainer's ``--resume latest``. ``protocol.json`` holds the settings: resuming with others
is refused. Each run's log: ``logs/<method>-seed<k>.log``.

Default pair: the project's StyleGAN2 faces source (``fsgen/stylegan2-faces64``, with its
discriminator) → ``../shared/data/tenshot/sketches``, SWD against ``../shared/data/cufs_sketches``.
``--jobs 2`` runs two workers at once with the CPU threads split between them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parent.parent / "shared" / "data"
DEFAULT_SOURCE = "fsgen/stylegan2-faces64"
DEFAULT_TARGET, DEFAULT_REFERENCE = SHARED_DATA / "tenshot" / "sketches", SHARED_DATA / "cufs_sketches"
EVAL_METRICS = ["swd", "msssim_diversity", "memorization", "memorization_calibrated", "correspondence", "collapse"]
# the result names those metrics give, in table order, and which way is better
COLUMNS = {"swd": "lower", "msssim_diversity": "higher", "correspondence": "higher", "face_rate": "higher",
           "collapse_diversity_ratio": "higher", "collapse_modes": "higher", "memorization_calibrated": "lower",
           "memorization_ratio": "higher", "memorization": "lower"}
# computed on the exported model when their weights / package are present: Inception, LPIPS, OpenCV (face rate,
# the offline semantic check: every pair here is a face domain)
OPTIONAL = ["fid5k", "intra_lpips1k", "face_rate"]
SELECT_BY = "swd"
SOURCE_ROW = "source (no adaptation)"
PAIR_LATENTS_SEED, PAIR_COUNT = 123, 8


# ---------------------------------------------------------------------------------------------- methods
def parse_variants(methods: str | None, variants: list[str]) -> dict[str, dict]:
    """``--methods a,b`` and ``--variant LABEL=METHOD[:k=v,k=v]`` → {label: {"method", "options", "training"}},
    checked; ``train.<field>=v`` keys set a TrainingArguments field of that row (e.g. ``train.r1_gamma=0.1``),
    the others are the method's options."""
    import dataclasses

    from fsgen_hub.methods.base import get_method, list_methods
    from fsgen_hub.training.arguments import TrainingArguments, parse_options
    from fsgen_hub.utils.errors import FsgenError

    names = [m.strip() for m in methods.split(",") if m.strip()] if methods else ([] if variants else list(list_methods()))
    specs = {name: {"method": name, "options": {}, "training": {}} for name in names}
    training_fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    for text in variants:
        label, sep, rest = text.partition("=")
        method, _, raw = rest.partition(":")
        if not sep or not label.strip() or not method.strip():
            raise FsgenError(f"--variant {text!r} must look like LABEL=METHOD or LABEL=METHOD:key=value,key=value")
        if label.strip() in specs or label.strip() == SOURCE_ROW:
            raise FsgenError(f"--variant label {label.strip()!r} is used twice: give each row its own label")
        options = parse_options([raw.strip()] if raw.strip().startswith("{") else [kv for kv in raw.split(",") if kv.strip()])
        training = {k.removeprefix("train."): options.pop(k) for k in list(options) if k.startswith("train.")}
        unknown = sorted(set(training) - training_fields)
        if unknown:
            raise FsgenError(f"--variant {label.strip()}: train.{unknown[0]} is not a training setting "
                             "(see `fsgen train --help`; write the flag's name with _ for -)")
        specs[label.strip()] = {"method": method.strip(), "options": options, "training": training}
    for label, spec in specs.items():
        if "/" in label or label.startswith("."):
            raise FsgenError(f"method label {label!r} names a folder: use letters, digits, - and _")
        try:
            get_method(spec["method"], spec["options"])  # unknown method or option: fail now, not after hours
        except (FsgenError, TypeError, ValueError) as exc:
            raise FsgenError(f"{'--variant ' if label not in names else '--methods: '}{label}: {exc}") from None
    return specs


# ---------------------------------------------------------------------------------------------- one run
def worker(args) -> dict:
    import resource

    import torch

    from fsgen_hub.auto import AutoGenerator

    if args.threads:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    spec = json.loads(args.spec)
    if args.worker == SOURCE_ROW:  # the unadapted source: where every method starts (step 0 of the curves)
        model, row = args.source, _evaluate_source(args)
    else:
        run_dir = out_dir / "runs" / f"{args.worker}-seed{args.seed}"
        _adapt(args, spec, run_dir)
        model, row = str(run_dir), _read_run(run_dir)
    row.update({"method": args.worker, "base_method": spec.get("method"), "options": spec.get("options", {}),
                **({"training": spec["training"]} if spec.get("training") else {}),
                "seed": args.seed, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    G = AutoGenerator.from_pretrained(model)
    row["best"].update(_optional_metrics(args, G))
    if args.seed == 0:
        from fsgen_hub.utils.images import save_image_grid

        z = G.make_latents(16, seed=PAIR_LATENTS_SEED)
        name = "source" if args.worker == SOURCE_ROW else args.worker
        save_image_grid(G.sample(16, z=z, seed=PAIR_LATENTS_SEED, output_type="pt"), out_dir / f"grid_{name}.png", nrow=8)
    return row


def _reference_and_exclusion(args):
    reference = args.reference or args.target
    exclude = args.target if args.reference else None  # the shots are the reference when none is given
    return reference, exclude


def _evaluate_source(args) -> dict:
    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.metrics import evaluate

    G = AutoGenerator.from_pretrained(args.source)
    reference, exclude = _reference_and_exclusion(args)
    results = evaluate(G, reference, EVAL_METRICS, num_samples=args.eval_samples, shots=args.target, seed=args.seed,
                       exclude_from_reference=exclude, source=G, step=0,
                       output_jsonl=Path(args.out) / "runs" / f"source-seed{args.seed}.jsonl")
    values = {r.metric: r.value for r in results}
    return {"wall_s": 0.0, "steps_run": 0, "best_step": 0, "final": dict(values), "best": dict(values),
            "curve": [{"step": 0, **values}]}


def _adapt(args, spec: dict, run_dir: Path) -> None:
    """Train (or finish training) ``run_dir``; a finished run folder is kept as it is."""
    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import CHECKPOINT_PREFIX, AdaptationTrainer
    from fsgen_hub.utils.constants import LINEAGE_NAME

    if (run_dir / LINEAGE_NAME).is_file() and (run_dir / "model.safetensors").is_file():
        return
    has_checkpoint = run_dir.is_dir() and any(run_dir.glob(f"{CHECKPOINT_PREFIX}*"))
    if run_dir.is_dir() and not has_checkpoint:  # killed before its first checkpoint: start clean
        shutil.rmtree(run_dir)
    reference, _ = _reference_and_exclusion(args)
    targs = TrainingArguments(
        source=args.source, data=args.target, shots=10, method=spec["method"], method_options=spec["options"],
        steps=args.steps, seed=args.seed, output_dir=str(run_dir), save_every=args.eval_every, keep_checkpoints=1,
        sample_every=0, log_every=50, device=args.device, eval_every=args.eval_every,
        eval_metrics=",".join(EVAL_METRICS), eval_reference=str(reference) if args.reference else None,
        eval_num_samples=args.eval_samples, select_best=SELECT_BY, patience=args.patience,
        resume="latest" if has_checkpoint else None,
        **({"batch_size": args.batch_size} if args.batch_size else {}), **spec.get("training", {}))
    AdaptationTrainer(targs).train()
    for checkpoint in run_dir.glob(f"{CHECKPOINT_PREFIX}*"):  # optimizer and D states: only needed to resume
        shutil.rmtree(checkpoint, ignore_errors=True)


def read_curve(metrics_jsonl: Path) -> list[dict]:
    """{step, metric: value, ...} per evaluated step; a step evaluated twice (a resumed run) keeps its last record."""
    by_step: dict[int, dict] = {}
    for line in metrics_jsonl.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            by_step.setdefault(int(record["step"]), {})[record["metric"]] = record["value"]
    return [{"step": step, **values} for step, values in sorted(by_step.items())]


def _read_run(run_dir: Path) -> dict:
    from fsgen_hub.folder import read_lineage

    lineage = read_lineage(run_dir) or {}
    training = lineage.get("training", {})
    curve = read_curve(run_dir / "metrics.jsonl")
    best = lineage.get("best_checkpoint") or {}
    best_step = best.get("step", curve[-1]["step"])
    best_values = next(point for point in curve if point["step"] == best_step)
    return {"wall_s": training.get("wall_time_s"), "steps_run": training.get("steps_run", curve[-1]["step"]),
            "best_step": best_step, "final": {k: v for k, v in curve[-1].items() if k != "step"},
            "best": {k: v for k, v in best_values.items() if k != "step"}, "curve": curve}


def _optional_metrics(args, G, names: list[str] = OPTIONAL) -> dict:
    from fsgen_hub.metrics import evaluate
    from fsgen_hub.utils.errors import MissingWeightsError
    from fsgen_hub.utils.extras import MissingDependencyError

    reference, exclude = _reference_and_exclusion(args)
    values = {}
    for name in names:
        try:
            values.update({r.metric: r.value for r in evaluate(G, reference, [name], shots=args.target,
                                                               seed=1000 + args.seed, exclude_from_reference=exclude)})
        except (MissingWeightsError, MissingDependencyError):
            pass
    return values


def rescore(args, rows: list[dict], out: Path) -> int:
    """Adds the optional metrics a finished row lacks (e.g. ``face_rate``, added after it ran) from its exported
    model, where its run folder is on this machine; returns how many rows changed."""
    from fsgen_hub.auto import AutoGenerator

    changed = 0
    for row in rows:
        model = args.source if row["method"] == SOURCE_ROW else out / "runs" / f"{row['method']}-seed{row['seed']}"
        if row["method"] != SOURCE_ROW and not (model / "config.json").is_file():
            continue
        names = [name for name in OPTIONAL if name not in row["best"]]  # only what the row lacks: no re-sampling
        if not names:
            continue
        found = _optional_metrics(argparse.Namespace(**{**vars(args), "seed": row["seed"]}),
                                  AutoGenerator.from_pretrained(str(model)), names)
        missing = {k: v for k, v in found.items() if k not in row["best"]}
        if missing:
            row["best"].update(missing)
            changed += 1
    return changed


# ---------------------------------------------------------------------------------------------- summary
def _shown(path: str) -> str:
    """A data path as the table shows it: relative to the working directory (no home paths in results)."""
    return os.path.relpath(path) if Path(path).is_absolute() else path


def _order(methods) -> list[str]:
    return sorted(dict.fromkeys(methods), key=lambda m: (m != SOURCE_ROW, m))


def summarise(rows: list[dict], which: str) -> tuple[str, dict]:
    """Markdown table of ``which`` ("final" or "best") numbers, mean ± std over seeds, and the stats."""
    methods = _order(r["method"] for r in rows)
    metrics = [m for m in COLUMNS if any(m in r[which] for r in rows)]
    metrics += sorted({k for r in rows for k in r[which]} - set(metrics))
    extra = ["best_step", "steps_run", "wall_s"] if which == "best" else ["steps_run", "wall_s"]
    stats = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        stats[method] = {}
        for m in metrics + extra:
            values = [r[which].get(m) if m in metrics else r.get(m) for r in mine]
            values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
            if values:
                stats[method][m] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    names = [f"{m} ({'↓' if COLUMNS.get(m) == 'lower' else '↑'})" if m in COLUMNS else m for m in metrics] + extra
    lines = ["| method | seeds | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    for method in methods:
        runs = [r for r in rows if r["method"] == method]
        cells = [f"{stats[method][m][0]:.3g} ± {stats[method][m][1]:.2g}"
                 + (_counted(m, runs, which) if m in metrics else "") if m in stats[method] else "n/a"
                 for m in metrics + extra]
        lines.append(f"| {method} | {sum(r['method'] == method for r in rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines), stats


def _counted(metric: str, runs: list[dict], which: str) -> str:
    """' (n=k)' when only k of the method's seeds have ``metric`` (e.g. a face rate added after some runs)."""
    have = sum(metric in r[which] and r[which][metric] is not None for r in runs)
    return f" (n={have})" if have < len(runs) else ""


def curves_by_method(rows: list[dict]) -> dict[str, dict[str, list[tuple[int, float, float, int]]]]:
    """{method: {metric: [(step, mean, std, seeds)]}}; every method's curve starts at the source (step 0, same seed)."""
    sources = {r["seed"]: r["curve"][0] for r in rows if r["method"] == SOURCE_ROW}
    out: dict[str, dict] = {}
    for method in _order(r["method"] for r in rows):
        if method == SOURCE_ROW:
            continue
        points: dict[str, dict[int, list[float]]] = {}
        for row in (r for r in rows if r["method"] == method):
            curve = ([sources[row["seed"]]] if row["seed"] in sources else []) + row["curve"]
            for point in curve:
                for metric, value in point.items():
                    if metric != "step" and value is not None and not math.isnan(value):
                        points.setdefault(metric, {}).setdefault(point["step"], []).append(value)
        out[method] = {metric: [(step, statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
                                for step, v in sorted(by_step.items())] for metric, by_step in points.items()}
    return out


def method_styles(methods: list[str]) -> dict[str, dict]:
    """A colour and line style per method, distinct for up to 40 methods (matplotlib's default cycle repeats
    after 10, which drew e.g. BSA and fine-tuning in the same blue)."""
    import matplotlib

    palette = matplotlib.colormaps["tab20"].colors
    return {method: {"color": palette[i % 20], "linestyle": ("-", "--")[i // 20 % 2]} for i, method in enumerate(methods)}


def plot_curves(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = curves_by_method(rows)
    metrics = [m for m in COLUMNS if any(m in c for c in curves.values())]
    if not metrics:
        return
    cols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    styles = method_styles(list(curves))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for method, by_metric in curves.items():
            if metric not in by_metric:
                continue
            steps, means, stds, _ = zip(*by_metric[metric])
            ax.plot(steps, means, marker=".", label=method, **styles[method])
            ax.fill_between(steps, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=styles[method]["color"], alpha=0.15)
        ax.set_title(f"{metric} ({COLUMNS[metric]} is better)", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7)  # beside the panels: inside, it hid the SWD curves
    fig.suptitle(title + " — mean over seeds ± std; step 0 is the source", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bars(stats: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("swd", "msssim_diversity", "correspondence", "memorization_calibrated")
               if any(m in s for s in stats.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    methods = list(stats)
    for ax, metric in zip(axes.flat, metrics):
        means = [stats[m].get(metric, (float("nan"), 0))[0] for m in methods]
        stds = [stats[m].get(metric, (0, 0))[1] for m in methods]
        ax.bar(range(len(methods)), means, yerr=stds, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{metric} ({COLUMNS[metric]} is better)", fontsize=9)
    fig.suptitle(title + " (final step)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_source_vs_adapted(source: str, run_dirs: dict[str, Path], path: Path) -> None:
    """The source's row of ``PAIR_COUNT`` latents on top, each method's (seed 0) row below, the same latents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fsgen_hub.auto import AutoGenerator

    models = {"source": source, **{label: str(d) for label, d in run_dirs.items()}}
    source_G = AutoGenerator.from_pretrained(source)
    z = source_G.make_latents(PAIR_COUNT, seed=PAIR_LATENTS_SEED)
    # constrained layout leaves room for the suptitle (tight_layout let it overlap the first row's label)
    fig, axes = plt.subplots(len(models), 1, figsize=(1.2 * PAIR_COUNT, 1.3 * len(models)), squeeze=False,
                             layout="constrained")
    for ax, (label, model) in zip(axes[:, 0], models.items()):
        G = source_G if label == "source" else AutoGenerator.from_pretrained(model)
        images = G.sample(PAIR_COUNT, z=z, seed=PAIR_LATENTS_SEED, output_type="pt", noise_mode="const")
        ax.imshow(images.permute(2, 0, 3, 1).reshape(images.shape[2], -1, 3).numpy())
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, loc="left", fontsize=9, pad=2)  # above the row: a long label is never clipped
    fig.suptitle("the same latents: source (top) and each method (exported checkpoint of its first seed)", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- driver
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"zoo id or folder (default: {DEFAULT_SOURCE})")
    parser.add_argument("--target", default=None, help=f"folder of the 10 shots (default: {DEFAULT_TARGET})")
    parser.add_argument("--reference", default=None,
                        help="held-out reference folder for SWD, the shots removed from it (default: cufs_sketches for "
                             "the default target, else the shots themselves)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated registered methods (default: all, or none when --variant is given)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=METHOD[:K=V,K=V]",
                        help="one more row: a method with options, e.g. dap_static=dap:dynamic=false (repeatable)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per run (the most, with --patience)")
    parser.add_argument("--patience", type=int, default=0,
                        help="stop a run once SWD has not improved for this many evaluations (0: run every step)")
    parser.add_argument("--eval-every", type=int, default=100, help="evaluate (and checkpoint) every N steps")
    parser.add_argument("--eval-samples", type=int, default=256, help="generated images per evaluation")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the trainer's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="workers run at once (threads are split between them)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spec", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rescore", action="store_true",
                        help="first add the optional metrics (face_rate, FID, intra-LPIPS where available) that "
                             "finished runs lack, from their exported models")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per worker (default: the cores split between the --jobs workers)")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    from fsgen_hub.utils.errors import FsgenError

    try:
        run_all(args)
    except FsgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_all(args) -> None:
    from fsgen_hub.utils.errors import FsgenError

    if args.target is None:
        args.target = str(DEFAULT_TARGET)
        args.reference = args.reference or str(DEFAULT_REFERENCE)
    for path in (args.target, args.reference):
        if path and not Path(path).is_dir():
            raise FsgenError(f"{path} is not a folder (the shared data lives in ../shared/data)")
    for name in ("jobs", "steps", "eval_every", "eval_samples"):
        if getattr(args, name) < 1:
            raise FsgenError(f"--{name.replace('_', '-')} must be at least 1")
    if args.patience < 0:
        raise FsgenError("--patience must be 0 (off) or a number of evaluations")
    specs = parse_variants(args.methods, args.variant)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    protocol = {"source": args.source, "target": _shown(args.target), "reference": args.reference and _shown(args.reference),
                "steps": args.steps, "patience": args.patience, "eval_every": args.eval_every,
                "eval_samples": args.eval_samples, "batch_size": args.batch_size, "metrics": EVAL_METRICS,
                "select_best": SELECT_BY}
    protocol["source_sha256"] = source_weights_sha256(args.source)  # the zoo id's weights change as the source trains
    protocol_file, results_file = out / "protocol.json", out / "results.json"
    recorded = json.loads(protocol_file.read_text()) if protocol_file.exists() else protocol
    if "source_sha256" not in recorded:
        raise FsgenError(f"{protocol_file} records no digest of the source's weights (written before it was recorded): "
                         "add the source_sha256 of the weights its runs were adapted from, or use another --out")
    if recorded["source_sha256"] != protocol["source_sha256"]:
        raise FsgenError(f"{out} holds runs adapted from other weights of {args.source} (sha256 "
                         f"{str(recorded['source_sha256'])[:12]}, now {str(protocol['source_sha256'])[:12]}): "
                         "use another --out, or pass those weights' folder as --source")
    if recorded != protocol:
        raise FsgenError(f"{out} holds runs of other settings ({protocol_file}): use another --out, or the same settings")
    rows = json.loads(results_file.read_text()) if results_file.exists() else []  # resumable: finished runs are kept
    if any("curve" not in r for r in rows):
        raise FsgenError(f"{results_file} was written by the older end-of-run protocol: use another --out")
    protocol_file.write_text(json.dumps(protocol, indent=1))
    for row in rows:  # a label re-used for other options would mix two recipes in one row
        if row["method"] in specs and (row.get("options", {}), row.get("training", {})) != (
                specs[row["method"]]["options"], specs[row["method"]]["training"]):
            raise FsgenError(f"{row['method']} in {results_file} ran with options {row.get('options')} "
                             f"and training settings {row.get('training', {})}: "
                             "give the new variant another label or use another --out")
    if args.rescore and rows:
        print(f"rescored {rescore(args, rows, out)} finished run(s)", file=sys.stderr)
        _write_rows(rows, results_file)
    done = {(r["method"], r["seed"]) for r in rows}
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    common = [f"--source={args.source}", f"--target={args.target}", f"--steps={args.steps}",
              f"--patience={args.patience}", f"--eval-every={args.eval_every}", f"--eval-samples={args.eval_samples}",
              f"--device={args.device}", f"--out={out}", f"--threads={threads}"]
    common += [f"--reference={args.reference}"] if args.reference else []
    common += [f"--batch-size={args.batch_size}"] if args.batch_size else []
    all_specs = {SOURCE_ROW: {}, **specs}
    todo = [(label, seed) for seed in seeds for label in all_specs if (label, seed) not in done]
    (out / "logs").mkdir(exist_ok=True)

    def run_one(job: tuple[str, int]) -> dict | None:
        label, seed = job
        log = out / "logs" / f"{'source' if label == SOURCE_ROW else label}-seed{seed}.log"
        proc = subprocess.run([sys.executable, __file__, "--worker", label, f"--seed={seed}",
                               f"--spec={json.dumps(all_specs[label])}", *common], capture_output=True, text=True)
        log.write_text(proc.stderr)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else str(proc.returncode)
            print(f"{label} seed {seed}: FAILED ({log}): {last}", file=sys.stderr)
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(args.jobs) as pool:  # threads only wait on the worker subprocesses
        for future in as_completed([pool.submit(run_one, job) for job in todo]):  # record each run as it ends
            row = future.result()
            if row is None:
                continue
            rows.append(row)
            _write_rows(rows, results_file)
            print(f"{row['method']} seed {row['seed']}: " + ", ".join(f"{k}={v:.4g}" for k, v in row["final"].items()),
                  file=sys.stderr)
    if not rows:
        raise FsgenError("no run finished")
    write_summary(args, rows, threads, out)


def source_weights_sha256(source: str) -> str | None:
    """sha256 of the source's weights file, as the runs' lineage records it (``base_model.sha256``)."""
    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.folder import weights_sha256

    return weights_sha256(AutoGenerator.from_pretrained(source).source_info.get("local_dir"))


def _write_rows(rows: list[dict], results_file: Path) -> None:
    """Write ``rows`` plus any rows another driver on the same ``--out`` recorded meanwhile (two drivers may
    run different methods into one table; neither may drop the other's finished runs). The rows found on disk
    are appended to ``rows`` too, so the caller's later writes keep them. One row per (method, seed), the
    caller's latest: two drivers given the same seed both run its source row, and a rescore replaces a row."""
    latest = {(r["method"], r["seed"]): r for r in rows}
    rows[:] = list(latest.values())
    if results_file.exists():
        rows.extend(r for r in json.loads(results_file.read_text()) if (r["method"], r["seed"]) not in latest)
    tmp = results_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, results_file)  # a kill mid-write leaves the previous complete file


def figure_runs(rows: list[dict], out: Path) -> tuple[dict[str, Path], list[str]]:
    """({label: run folder}, methods left out) for ``source_vs_adapted.png``: each method's lowest seed whose
    exported run folder is on this machine, the label naming the seed when it is not the first seed."""
    first_seed = min(r["seed"] for r in rows)
    run_dirs, missing = {}, []
    for method in _order(r["method"] for r in rows if r["method"] != SOURCE_ROW):
        here = [s for s in sorted(r["seed"] for r in rows if r["method"] == method)
                if (out / "runs" / f"{method}-seed{s}" / "config.json").is_file()]
        if not here:
            missing.append(method)
            continue
        run_dirs[method if here[0] == first_seed else f"{method} (seed {here[0]})"] = out / "runs" / f"{method}-seed{here[0]}"
    return run_dirs, missing


def write_summary(args, rows: list[dict], threads: int, out: Path) -> None:
    final_table, final_stats = summarise(rows, "final")
    best_table, _ = summarise(rows, "best")
    limit = f"{args.steps} steps" + (f" (or until SWD has not improved for {args.patience} evaluations)" if args.patience else "")
    seeds = ", ".join(str(seed) for seed in sorted({r["seed"] for r in rows}))  # of every recorded run, not this call's
    title = f"{args.source} → {Path(args.target).name}: {limit}, seeds {seeds}"
    reference = _shown(args.reference) if args.reference else f"{_shown(args.target)} (the shots themselves)"
    without = " without the shots" if args.reference else ""
    conditions = f"the last call ran {args.jobs} worker(s) at once, {threads} thread(s) each, device {args.device}"
    text = (f"{title}; evaluated every {args.eval_every} steps on {args.eval_samples} samples (SWD vs {reference}{without}; "
            f"correspondence and collapse on 100 latents shared with the source); {conditions}\n\n"
            f"**Final** (last step of each run)\n\n{final_table}\n\n"
            f"**Best checkpoint** (lowest SWD among the evaluations; the selection uses the evaluation set, as RICK and "
            f"AdAM select by FID, so these numbers are optimistic)\n\n{best_table}\n")
    (out / "table.md").write_text(text)
    plot_curves(rows, out / "curves.png", title)
    plot_bars(final_stats, out / "bars.png", title)
    run_dirs, missing = figure_runs(rows, out)
    if missing:  # runs/ is not in git: rows recorded on another machine have no model here
        print(f"source_vs_adapted.png leaves out {', '.join(missing)}: their run folders are not on this machine",
              file=sys.stderr)
    plot_source_vs_adapted(args.source, dict(sorted(run_dirs.items())), out / "source_vs_adapted.png")
    print(text)


if __name__ == "__main__":
    main()
