"""Seconds per 1,000 images for every metric on this machine (feature extraction batched).

    python scripts/bench_metrics.py [--num-samples 1000] [--reference ../shared/data/cufs_sketches]

Metrics whose weights are absent offline (FID/KID Inception, LPIPS backbone) are reported as such.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import hardware, markdown_table  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--reference", default=str(SHARED / "data" / "cufs_sketches"))
    parser.add_argument("--metrics", default="swd,msssim_diversity,memorization,fid5k,kid5k,intra_lpips1k")
    args = parser.parse_args(argv)
    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.data import load_images
    from fsgen_hub.metrics import evaluate
    from fsgen_hub.utils.errors import FsgenError
    from fsgen_hub.zoo import DIGIFACE_SOURCE

    if not Path(args.reference).is_dir():
        sys.exit(f"reference folder {args.reference} is absent: pass --reference DIR")
    G = AutoGenerator.from_pretrained(DIGIFACE_SOURCE)
    reference, _ = load_images(args.reference, G.resolution)
    shots = reference[:10]
    rows = []
    for name in args.metrics.split(","):
        t0 = time.perf_counter()
        try:
            results = evaluate(G, reference, [name], num_samples=args.num_samples, shots=shots, seed=0, source=G)
        except FsgenError as exc:
            rows.append({"metric": name, "s / 1k images": "n/a", "value": str(exc).split(":")[0]})
            continue
        seconds = time.perf_counter() - t0
        for result in results:  # some metrics give several results (share and ratio)
            rows.append({"metric": result.metric, "s / 1k images": seconds * 1000 / args.num_samples, "value": result.value})
        print(f"{name}: {seconds:.1f} s", file=sys.stderr)
    print(f"hardware: {hardware(torch.device('cpu'))}; {args.num_samples} generated images (DigiFace DCGAN 64 px), "
          f"{len(reference)} reference images; time includes sampling\n")
    print(markdown_table(rows, ["metric", "s / 1k images", "value"]))


if __name__ == "__main__":
    main()
