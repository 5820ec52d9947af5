"""``fsgen zoo``: the known model ids."""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("zoo", help="list known model ids (source, licence, paper)")
    parser.add_argument("pattern", nargs="?", default=None, help="fnmatch filter, e.g. '*stylegan2*'")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from fsgen_hub.zoo import ZOO, list_models, resolve_local

    rows = [("id", "arch", "res", "D", "license", "offline", "paper / source")]
    for name in list_models(args.pattern):
        e = ZOO[name]
        offline = "yes" if e.offline else "no (needs hub)"
        if e.offline and name != "fsgen/dcgan-digiface64" and resolve_local(name) is None:
            offline = "not built yet"
        rows.append((e.id, e.architecture, str(e.resolution), "yes" if e.has_discriminator else "no", e.license, offline, e.paper))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0
