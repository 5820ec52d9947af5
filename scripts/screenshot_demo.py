"""Screenshot of the running demo in headless Chromium (Debian package `chromium`).

    python scripts/screenshot_demo.py [MODEL ...] --out docs/demo.png

Starts the app on 127.0.0.1 (the page generates samples of the first model on load), opens it in
headless Chromium driven over the DevTools protocol (real time, so the generation request really
completes), waits until the gallery shows images, and saves a PNG. Needs `websockets` (dev extra).
"""
from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1400,1060",
]
_ids = itertools.count(1)


def cdp(ws, method: str, **params) -> dict:
    msg_id = next(_ids)
    ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
    while True:
        reply = json.loads(ws.recv())
        if reply.get("id") == msg_id:
            return reply.get("result", {})


def page_websocket(port: int, timeout: float = 20.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2))
            return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        except (OSError, StopIteration, ValueError):
            time.sleep(0.3)
    raise SystemExit("headless Chromium did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--out", default="docs/demo.png")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for images")
    parser.add_argument("--port", type=int, default=9333, help="Chromium DevTools port")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    from websockets.sync.client import connect

    from fsgen_hub.demo import build_app

    demo = build_app(args.models, device="cpu")
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={args.port}",
         "--remote-allow-origins=*", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with connect(page_websocket(args.port), max_size=2**27) as ws:
            cdp(ws, "Page.navigate", url=demo.local_url)
            count_images = "document.querySelectorAll('img[src*=\"/file=\"], img[src*=\"gradio_api/file\"]').length"
            deadline, found = time.time() + args.timeout, 0
            while time.time() < deadline and found < 4:
                time.sleep(1)
                found = cdp(ws, "Runtime.evaluate", expression=count_images, returnByValue=True)["result"].get("value", 0)
            time.sleep(1.5)  # let the last thumbnails paint
            shot = cdp(ws, "Page.captureScreenshot", format="png")
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {out} ({found} images on the page)")
    finally:
        browser.terminate()
        browser.wait(timeout=10)
        demo.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
