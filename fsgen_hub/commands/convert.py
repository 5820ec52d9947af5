"""``fsgen convert SRC OUT [--from rosinality|stylegan2-ada|dcgan] [--overwrite]``."""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("convert", help="convert a rosinality .pt, NVlabs .pkl or DCGAN checkpoint to a hub folder")
    parser.add_argument("src", help="checkpoint file")
    parser.add_argument("out", help="output folder (written atomically)")
    parser.add_argument("--from", dest="from_format", choices=None, default=None,
                        help="rosinality | stylegan2-ada | dcgan (detected when omitted)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT even when it is a non-empty folder that is not an fsgen_hub model folder "
                             "(never one that holds SRC)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from fsgen_hub.hub import AutoGenerator
    from fsgen_hub.models.convert import convert_checkpoint

    out = convert_checkpoint(args.src, args.out, from_format=args.from_format, overwrite=args.overwrite)
    G = AutoGenerator.from_pretrained(out)
    print(f"converted {args.src} -> {out} ({G.architecture}, {G.resolution} px, "
          f"{'with' if (out / 'discriminator').is_dir() else 'no'} discriminator)")
    return 0
