"""``fsgen sample MODEL --num N --seed S --truncation T --out FILE.png``."""
from __future__ import annotations

import argparse
from pathlib import Path

from fsgen_hub.errors import FsgenError


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sample", help="generate images from a model (zoo id, hub id or folder)")
    parser.add_argument("model", help="model folder, hub id or zoo id")
    parser.add_argument("--num", type=int, default=16, help="number of images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=1.0, help="1 = none, 0.7 is common")
    parser.add_argument("--out", default="samples.png", help="a .png file (one grid) or a folder (one PNG per image)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import torch

    from fsgen_hub.hub import AutoGenerator
    from fsgen_hub.io import atomic_path
    from fsgen_hub.training.grids import save_image_grid

    if args.num < 1:
        raise FsgenError("--num must be at least 1")
    if not 0.0 <= args.truncation <= 1.0:
        raise FsgenError("--truncation must be between 0 and 1")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    G = AutoGenerator.from_pretrained(args.model, revision=args.revision, map_location=device)
    images = G.sample(args.num, seed=args.seed, truncation=args.truncation, batch_size=args.batch_size,
                      device=device, output_type="pt")
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        with atomic_path(out) as tmp:
            save_image_grid(images, tmp, fmt="png")
    else:
        from PIL import Image

        out.mkdir(parents=True, exist_ok=True)
        arrays = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
        for i, array in enumerate(arrays):
            Image.fromarray(array).save(out / f"seed{args.seed}_{i:04d}.png")
    print(f"wrote {args.num} images to {out}")
    return 0
