"""The ``fsgen`` command: one argparse group, each subcommand a thin call into the library.

Every subcommand lives in ``fsgen_hub/commands/<name>.py`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` whose parser has ``func=run`` set as default,
where ``run(args) -> int``. Command modules import their heavy dependencies inside ``run``, so that
``fsgen --help`` stays fast and a missing optional piece breaks only the command that needs it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from fsgen_hub.commands import adapt, convert, demo, evaluate, methods, push, sample, train, zoo
from fsgen_hub.utils.constants import __version__
from fsgen_hub.utils.errors import FsgenError

COMMAND_MODULES = [
    sample, convert, zoo,               # generator zoo
    adapt, train, methods,              # trainer
    evaluate,                           # metrics
    push,                               # publishing
    demo,                               # Gradio app
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsgen",
        description="Few-shot cross-domain GAN adaptation with Hugging Face hub models.",
    )
    parser.add_argument("--version", action="version", version=f"fsgen_hub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # `fsgen` alone prints help; `fsgen adapt` alone runs the embedded default
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # its retry warnings would bury our one-line errors
        from huggingface_hub.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        logging.getLogger("accelerate").setLevel(logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "config", None):  # --config FILE: its values become defaults, explicit flags still win
            from fsgen_hub.training.arguments import apply_config_file

            apply_config_file(args.config_parser, args.config)
            args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except FsgenError as exc:
        if args.verbose or os.environ.get("FSGEN_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
