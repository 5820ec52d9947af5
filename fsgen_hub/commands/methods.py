"""``fsgen methods``: registered adaptation methods, one line each, with their options."""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("methods", help="list adaptation methods")
    parser.add_argument("--options", action="store_true", help="also list each method's options")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    import dataclasses

    from fsgen_hub.methods.base import list_methods

    for name, cls in list_methods().items():
        print(f"{name:10s} {cls.description}  [{cls.paper}]")
        if args.options:
            for f in dataclasses.fields(cls.config_class):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                print(f"    {f.name} = {default!r}: {f.metadata.get('help', '')}")
    return 0
