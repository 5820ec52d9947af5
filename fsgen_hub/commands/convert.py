"""``fsgen convert SRC OUT [--from rosinality|stylegan2-ada|dcgan] [--overwrite]``."""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("convert", help="convert a rosinality .pt, NVlabs .pkl or DCGAN checkpoint to a hub folder")
    parser.add_argument("src", help="checkpoint file, or a file in a hub repo: REPO_ID/FILE (REPO_ID alone: its "
                        "model.safetensors or pytorch_model.bin, e.g. a HugGAN DCGAN)")
    parser.add_argument("out", help="output folder (written atomically)")
    parser.add_argument("--from", dest="from_format", choices=None, default=None,
                        help="rosinality | stylegan2-ada | dcgan (detected when omitted; dcgan covers the tutorial's "
                             "main.N and HugGAN's model.N layouts)")
    parser.add_argument("--revision", default=None, help="hub revision of REPO_ID (branch, tag or commit)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT even when it is a non-empty folder that is not an fsgen_hub model folder "
                             "(never one that holds SRC)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.models.convert import convert_checkpoint

    out = convert_checkpoint(args.src, args.out, from_format=args.from_format, revision=args.revision,
                             overwrite=args.overwrite)
    G = AutoGenerator.from_pretrained(out)
    print(f"converted {args.src} -> {out} ({G.architecture}, {G.resolution} px, "
          f"{'with' if (out / 'discriminator').is_dir() else 'no'} discriminator)")
    return 0
