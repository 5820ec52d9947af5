"""``fsgen push DIR REPO_ID [--private] [--revision BRANCH] [--token TOKEN]``.

The card: a missing README.md is written; a README.md that fsgen_hub generated and nobody edited
is regenerated (so the usage snippet names REPO_ID and the latest metrics.jsonl results show);
a README.md edited by hand is pushed as it is. Delete it to get a fresh one.
"""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push", help="publish a model folder (weights, discriminator, card, images, metrics) to the Hugging Face Hub"
    )
    parser.add_argument("model_dir", metavar="DIR", help="model folder (e.g. the --output-dir of `fsgen adapt`)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="hub repo id, NAMESPACE/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo private (no effect if it exists)")
    parser.add_argument("--revision", default=None, metavar="BRANCH",
                        help="push to this branch, created from main when missing (default: main)")
    parser.add_argument("--token", default=None,
                        help="hub write token (default: HF_TOKEN or `hf auth login`; prefer those: a token typed "
                             "on the command line stays in the shell history)")
    parser.add_argument("--commit-message", default=None, help="default: 'Upload <method> adaptation of <base> ...'")
    parser.add_argument("--card-only", action="store_true",
                        help="write or refresh README.md for REPO_ID and stop, to review it before pushing")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from pathlib import Path

    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from fsgen_hub.cards import refresh_model_card
    from fsgen_hub.folder import read_model_folder
    from fsgen_hub.publish import push_folder
    from fsgen_hub.utils.constants import CARD_NAME
    from fsgen_hub.utils.errors import FsgenError

    model_dir = Path(args.model_dir)
    read_model_folder(model_dir)  # a clear error before anything is written
    try:
        validate_repo_id(args.repo_id)
    except HFValidationError:
        raise FsgenError(
            f"{args.repo_id!r} is not a hub repo id: use NAMESPACE/NAME (letters, digits, '-', '_', '.')"
        ) from None
    status = refresh_model_card(model_dir, args.repo_id)
    card = model_dir / CARD_NAME
    if status == "written":
        print(f"wrote the model card {card}")
    elif status == "kept":
        print(f"{card} was edited by hand: pushing it as it is (delete it to regenerate it)")
    if args.card_only:
        print(f"model card ready: {card}")
        return 0
    url = push_folder(model_dir, args.repo_id, private=args.private, revision=args.revision, token=args.token,
                      commit_message=args.commit_message)
    print(url)
    return 0
