"""``fsgen evaluate MODEL --reference DATA --metrics a,b --num-samples N``."""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("evaluate", help="compute metrics of a model against reference images")
    parser.add_argument("model", help="model folder, hub id or zoo id")
    parser.add_argument("--reference", required=True, help="reference images: folder, dataset folder/parquet or hub dataset id")
    parser.add_argument("--metrics", default="swd,msssim_diversity", help="comma separated (`fsgen evaluate --list`)")
    parser.add_argument("--num-samples", type=int, default=None, help="generated images (default: each metric's protocol)")
    parser.add_argument("--shots", default=None, help="training shots (intra-LPIPS, memorization); default: from lineage when local")
    parser.add_argument("--source", default=None,
                        help="unadapted source generator for correspondence/collapse (default: the model's lineage base model)")
    parser.add_argument("--exclude-shots", action="store_true", help="drop the shots from the reference set (matched by content)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--inception-weights", default=None, help="path to weights-inception-2015-12-05-6726825d.pth")
    parser.add_argument("--lpips-weights", default=None, help="path to vgg16-397923af.pth (or alexnet with --lpips-net alex)")
    parser.add_argument("--lpips-net", default="vgg", choices=["vgg", "alex"])
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import sys

    from fsgen_hub.metrics.base import evaluate
    from fsgen_hub.utils.errors import MissingWeightsError

    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    options = {"inception_weights": args.inception_weights, "lpips_weights": args.lpips_weights, "net": args.lpips_net}
    shots = args.shots
    rows, failures = [], []
    for name in names:  # one at a time: a metric without weights must not stop the others
        try:
            results = evaluate(args.model, args.reference, [name], num_samples=args.num_samples, shots=shots,
                               seed=args.seed, batch_size=args.batch_size, device=args.device,
                               exclude_from_reference=shots if args.exclude_shots else None, source=args.source,
                               options={k: v for k, v in options.items() if _accepts(name, k)})
            rows += results
        except MissingWeightsError as exc:
            failures.append(f"{name}: {exc}")
    print(f"{'metric':22s} {'value':>12s}  samples  reference")
    for r in rows:
        print(f"{r.metric:22s} {r.value:12.4f}  {r.protocol['num_samples']:7d}  {r.protocol['reference']}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 2 if failures else 0


def _accepts(metric: str, option: str) -> bool:
    if option == "inception_weights":
        return metric.startswith(("fid", "kid"))
    if option in ("lpips_weights", "net"):
        return "lpips" in metric
    return True
