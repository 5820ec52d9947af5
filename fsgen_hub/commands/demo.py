"""``fsgen demo [MODEL ...]``: the Gradio app of spaces_app/ on local or hub models."""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="launch the Gradio app (sample, compare with source, interpolate)")
    parser.add_argument("models", nargs="*", help="model folders, hub ids or zoo ids for the picker")
    # None lets gradio read GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (its defaults: 127.0.0.1, 7860)
    parser.add_argument("--host", default=None, help="address to serve on (0.0.0.0 to expose); default "
                        "GRADIO_SERVER_NAME or 127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default GRADIO_SERVER_PORT or 7860")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--concurrency", type=int, default=2, help="generations running at once")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (needs network)")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from fsgen_hub.demo import build_app

    app = build_app(args.models, device=args.device, concurrency_limit=args.concurrency)
    app.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0
