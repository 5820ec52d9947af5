"""``fsgen sample MODEL --num N --seed S --truncation T --out FILE.png`` or ``--seeds 0-35 --outdir DIR``.

``--seeds`` follows NVlabs ``gen_images.py``: one image per seed, written as ``seed0000.png`` into
``--outdir``; the image of a seed does not depend on the other seeds or on the batch size.
``--num N --seed S`` draws N latents from one stream seeded by S (the seed names the batch).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from fsgen_hub.utils.errors import FsgenError

MAX_SEEDS = 100_000


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' → [0, 1, 2, 3, 7, 10, 11] (NVlabs ``parse_range``), with one-line errors."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise FsgenError(f"--seeds {text!r}: use numbers and ranges such as 0-35,40,50-52")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise FsgenError(f"--seeds names more than {MAX_SEEDS} images")
        seeds.extend(range(low, high + 1))
    if any(not 0 <= s < 2**32 for s in seeds):
        raise FsgenError("--seeds must be between 0 and 4294967295")
    return seeds


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sample", help="generate images from a model (zoo id, hub id or folder)")
    parser.add_argument("model", help="model folder, hub id or zoo id")
    parser.add_argument("--num", type=int, default=None, help="number of images drawn from --seed's stream (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --num stream (names the whole batch)")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="one image per seed, e.g. 0-35 or 1,5,9 (NVlabs gen_images.py convention)")
    parser.add_argument("--truncation", type=float, default=1.0, help="1 = none, 0.7 is common")
    parser.add_argument("--noise-mode", choices=("const", "random", "none"), default="const",
                        help="StyleGAN2 per-layer noise: const (default), random (from the seed) or none")
    parser.add_argument("--out", default=None,
                        help="a .png file (one grid) or a folder (one PNG per image); default samples.png "
                             "unless --outdir is given")
    parser.add_argument("--outdir", default=None, help="folder for one PNG per image: seed0000.png ... with --seeds")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import torch

    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.utils.images import save_image_grid
    from fsgen_hub.utils.io import atomic_path

    if args.seeds is not None and args.num is not None:
        raise FsgenError("pass either --seeds (one image per seed) or --num/--seed (one stream), not both")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    num = len(seeds) if seeds is not None else (16 if args.num is None else args.num)
    if num < 1:
        raise FsgenError("--num must be at least 1")
    if args.batch_size < 1:
        raise FsgenError("--batch-size must be at least 1")
    if not 0.0 <= args.truncation <= 1.0:
        raise FsgenError("--truncation must be between 0 and 1")
    out = Path(args.out) if args.out else (None if args.outdir else Path("samples.png"))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    G = AutoGenerator.from_pretrained(args.model, revision=args.revision, map_location=device)
    common = dict(truncation=args.truncation, batch_size=args.batch_size, device=device, output_type="pt",
                  noise_mode=args.noise_mode)
    if seeds is not None:
        images = G.sample(seeds=seeds, seed=args.seed, **common)
        names = [f"seed{s:04d}.png" for s in seeds]
    else:
        images = G.sample(num, seed=args.seed, **common)
        names = [f"seed{args.seed}_{i:04d}.png" for i in range(num)]
    written = []
    if out is not None and out.suffix.lower() == ".png":
        with atomic_path(out) as tmp:
            save_image_grid(images, tmp, fmt="png")
        written.append(str(out))
    for folder in [p for p in (out, Path(args.outdir) if args.outdir else None) if p is not None and p.suffix.lower() != ".png"]:
        _save_each(images, names, folder)
        written.append(f"{folder}/")
    print(f"wrote {num} images to {' and '.join(written)}")
    return 0


def _save_each(images, names: list[str], folder: Path) -> None:
    from PIL import Image

    from fsgen_hub.utils.io import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    arrays = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for name, array in zip(names, arrays):
        with atomic_path(folder / name) as tmp:
            Image.fromarray(array).save(tmp, format="PNG")
