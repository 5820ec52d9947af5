"""``fsgen train``: the same trainer from random initialisation (no adaptation method)."""
from __future__ import annotations

import argparse

EXCLUDE = ("source", "method", "method_options", "shots", "shot_seed")


def register(subparsers) -> argparse.ArgumentParser:
    from fsgen_hub.training.arguments import add_arguments, add_config_argument

    parser = subparsers.add_parser("train", help="train a generator + discriminator from scratch (e.g. a source model)")
    add_arguments(parser, exclude=EXCLUDE)
    add_config_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from fsgen_hub.training.arguments import from_namespace
    from fsgen_hub.training.trainer import AdaptationTrainer
    from fsgen_hub.utils.errors import FsgenError

    if not args.architecture:
        raise FsgenError("fsgen train needs --architecture stylegan2|dcgan")
    if not args.data:
        raise FsgenError("fsgen train needs --data (a folder, parquet file or dataset)")
    trainer = AdaptationTrainer(from_namespace(args, shots=None, method=None))
    out = trainer.train(push=False)
    from fsgen_hub.commands.adapt import publish, report

    report(out)
    publish(trainer)
    return 0
