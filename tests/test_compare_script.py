"""scripts/compare_methods.py end to end on a tiny source: table, resumability, parallel workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import save_tiny_dcgan_source, write_random_images

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_methods.py"


def _compare(source: Path, target: Path, out: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(SCRIPT), f"--source={source}", f"--target={target}", "--methods=finetune,bsa",
            "--seeds=0", "--steps=2", "--batch-size=4", "--num-samples=16", "--jobs=2", f"--out={out}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_compare_methods_writes_table_and_resumes(tmp_path):
    source = save_tiny_dcgan_source(tmp_path / "source")
    target = write_random_images(tmp_path / "shots", count=10, size=16)
    out = tmp_path / "compare"

    proc = _compare(source, target, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((out / "results.json").read_text())
    # the unadapted source, then every method, each with its metrics
    assert sorted((r["method"], r["seed"]) for r in rows) == [("bsa", 0), ("finetune", 0), ("source (no adaptation)", 0)]
    assert all(r["swd"] > 0 and 0 <= r["memorization"] <= 1 for r in rows)
    table = (out / "table.md").read_text()
    assert f"2 worker(s) at once, {max(1, (os.cpu_count() or 1) // 2)} thread(s) each" in table
    assert table.index("| source (no adaptation) |") < table.index("| bsa |") < table.index("| finetune |")
    assert {p.name for p in out.glob("grid_*.png")} == {"grid_source.png", "grid_bsa.png", "grid_finetune.png"}
    assert (out / "bars.png").stat().st_size > 0

    again = _compare(source, target, out)  # every run is recorded: nothing is run twice
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "results.json").read_text()) == rows
    assert "swd=" not in again.stderr  # no per-run progress line: no run happened
