"""Face rate (OpenCV Haar frontal-face cascade, ``fsgen_hub.metrics.face_rate``) of models, one row each.

    OMP_NUM_THREADS=1 python scripts/face_rate_of_runs.py fsgen/stylegan2-faces64 results/*/runs/*/ \\
        --reference ../shared/data/cufs_sketches

Each FOLDER (an exported run folder or a zoo id) samples ``--num`` images with ``--seed`` (random noise,
as ``evaluate`` does) and the script prints a Markdown table of face rates. With ``--reference``, the
reference images' rate at each model's resolution is printed too: the ceiling at that resolution. Nothing
is written into the folders. One thread by default (``--threads``): it shares the machine with training.
"""
from __future__ import annotations

import argparse
import sys

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="FOLDER", help="exported run folder or zoo id")
    parser.add_argument("--reference", help="image folder whose face rate is printed alongside (the real images)")
    parser.add_argument("--num", type=int, default=256, help="samples per model (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    args = parser.parse_args(argv)

    from fsgen_hub import AutoGenerator, FsgenError
    from fsgen_hub.metrics.base import generate
    from fsgen_hub.metrics.face_rate import rate
    from fsgen_hub.utils.extras import require

    torch.set_num_threads(args.threads)
    require("cv2", "the face_rate metric").setNumThreads(args.threads)
    reference_rates: dict[int, float] = {}
    reference_column = " reference |" if args.reference else ""
    print(f"| model | face rate ({args.num} samples, seed {args.seed}) |{reference_column}")
    print("|---|---|" + ("---|" if args.reference else ""))
    try:
        for model in args.models:
            G = AutoGenerator.from_pretrained(model)
            fake = generate(G, args.num, args.seed, batch_size=64, device=G.device)  # in [0, 1], as evaluate draws them
            row = f"| {model.rstrip('/')} | {rate(fake):.3f} |"
            if args.reference:
                if G.resolution not in reference_rates:
                    from fsgen_hub.data import load_images

                    reference_rates[G.resolution] = rate((load_images(args.reference, G.resolution)[0] + 1) / 2)
                row += f" {reference_rates[G.resolution]:.3f} ({G.resolution} px) |"
            print(row, flush=True)
    except FsgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
