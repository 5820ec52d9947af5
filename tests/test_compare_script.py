"""scripts/compare_methods.py end to end on a tiny source: curves, final/best tables, variants, grids, resume."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import save_tiny_dcgan_source, write_random_images

from fsgen_hub.folder import weights_sha256

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_methods.py"
STEPS, EVAL_EVERY = 8, 2
VARIANT = "freezed1=freezed:frozen_blocks=1,train.ema_half_life=3"  # a method option and a training setting
sys.path.insert(0, str(SCRIPT.parent))  # the script's helpers are imported by the tests that check them in-process


def _argv(source: Path, target: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), f"--source={source}", f"--target={target}", f"--steps={STEPS}",
            f"--eval-every={EVAL_EVERY}", "--batch-size=4", "--eval-samples=16", "--jobs=2", f"--out={out}", *extra]


def _compare(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    return save_tiny_dcgan_source(root / "source"), write_random_images(root / "shots", count=10, size=16), root


@pytest.fixture(scope="module")
def finished(pair):
    source, target, root = pair
    out = root / "full"
    proc = _compare(*_argv(source, target, out, "--methods=finetune", f"--variant={VARIANT}",
                           "--seeds=0,1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text())


def test_every_run_has_its_curve_and_final_and_best_numbers(finished):
    out, rows = finished
    source_row = "source (no adaptation)"
    assert sorted((r["method"], r["seed"]) for r in rows) == [
        ("finetune", 0), ("finetune", 1), ("freezed1", 0), ("freezed1", 1), (source_row, 0), (source_row, 1)]
    variant = next(r for r in rows if r["method"] == "freezed1")
    assert variant["base_method"] == "freezed" and variant["options"] == {"frozen_blocks": 1}
    lineage = json.loads((out / "runs" / "freezed1-seed0" / "lineage.json").read_text())
    assert lineage["method"]["config"]["frozen_blocks"] == 1  # the option reached the trainer
    assert variant["training"] == {"ema_half_life": 3}  # train.* is a TrainingArguments field, not an option
    assert lineage["training"]["args"]["ema_half_life"] == 3
    assert "training" not in next(r for r in rows if r["method"] == "finetune")
    for row in rows:
        if row["method"] == source_row:
            assert [p["step"] for p in row["curve"]] == [0]
            assert row["final"]["correspondence"] == pytest.approx(1.0)  # the source against itself
            continue
        assert [p["step"] for p in row["curve"]] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
        assert row["final"] == {k: v for k, v in row["curve"][-1].items() if k != "step"}
        best = min(row["curve"], key=lambda p: p["swd"])  # best = lowest SWD of the evaluations
        assert row["best_step"] == best["step"] and row["best"]["swd"] == best["swd"]
        for key in ("swd", "msssim_diversity", "memorization", "memorization_calibrated", "memorization_ratio",
                    "correspondence", "collapse_diversity_ratio", "collapse_modes"):
            assert key in row["final"], key
        assert -1 <= row["final"]["correspondence"] <= 1 and 0 <= row["final"]["memorization_calibrated"] <= 1
        assert not list((out / "runs" / f"{row['method']}-seed{row['seed']}").glob("checkpoint-*"))


def test_tables_figures_and_grids(finished):
    out, _ = finished
    table = (out / "table.md").read_text()
    assert "**Final**" in table and "the selection uses the evaluation set" in table
    final, best = table.split("**Best checkpoint**")
    for part in (final, best):
        assert part.index("| source (no adaptation) | 2 |") < part.index("| finetune | 2 |") < part.index("| freezed1 | 2 |")
    assert "best_step" in best and "best_step" not in final
    assert f"2 worker(s) at once, {max(1, (os.cpu_count() or 1) // 2)} thread(s) each" in table
    assert {p.name for p in out.glob("grid_*.png")} == {"grid_source.png", "grid_finetune.png", "grid_freezed1.png"}
    from PIL import Image

    for name in ("curves.png", "bars.png", "source_vs_adapted.png"):
        assert Image.open(out / name).size[0] > 300, name
    rows_figure = Image.open(out / "source_vs_adapted.png")
    assert rows_figure.size[1] > rows_figure.size[0] / 8 * 2  # three rows of eight


def test_curves_average_seeds_and_start_at_the_source(finished):
    from compare_methods import curves_by_method

    _, rows = finished
    curves = curves_by_method(rows)
    swd = curves["finetune"]["swd"]
    source = [r for r in rows if r["method"] == "source (no adaptation)"]
    assert swd[0][0] == 0 and swd[0][1] == pytest.approx(sum(r["final"]["swd"] for r in source) / 2)
    runs = [r for r in rows if r["method"] == "finetune"]
    step, mean, _, seeds = swd[-1]
    assert (step, seeds) == (STEPS, 2) and mean == pytest.approx(sum(r["final"]["swd"] for r in runs) / 2)


def test_bad_variants_and_changed_settings_fail_in_one_line(pair, finished):
    source, target, root = pair
    proc = _compare(*_argv(source, target, root / "bad", "--variant=x=freezed:no_such_option=1"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("error: --variant x: unknown option(s) no_such_option for FreezeDConfig; valid: ")
    assert "frozen_blocks" in lines[0]
    proc = _compare(*_argv(source, target, root / "bad", "--variant=x=freezed:train.no_such_setting=1"))
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: --variant x: train.no_such_setting is not a training setting (see `fsgen train --help`; "
        "write the flag's name with _ for -)")
    assert not (root / "bad" / "results.json").exists()
    out, _ = finished
    proc = _compare(*_argv(source, target, out, "--methods=finetune", "--seeds=0", "--patience=1"))
    assert proc.returncode == 2 and "other settings" in proc.stderr
    # runs adapted from other weights of the same source id (the zoo's source trained on) are not mixed in
    moved = root / "other-weights"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("runs"))
    protocol = json.loads((moved / "protocol.json").read_text())
    assert protocol["source_sha256"] == weights_sha256(source)
    (moved / "protocol.json").write_text(json.dumps({**protocol, "source_sha256": "0" * 64}))
    proc = _compare(*_argv(source, target, moved, "--methods=finetune", "--seeds=0"))
    assert proc.returncode == 2 and "adapted from other weights" in proc.stderr.strip().splitlines()[-1]
    (moved / "protocol.json").write_text(json.dumps({k: v for k, v in protocol.items() if k != "source_sha256"}))
    proc = _compare(*_argv(source, target, moved, "--methods=finetune", "--seeds=0"))
    assert proc.returncode == 2 and "records no digest of the source's weights" in proc.stderr.strip().splitlines()[-1]


def test_finished_runs_are_not_repeated(pair, finished):
    source, target, _ = pair
    out, rows = finished
    again = _compare(*_argv(source, target, out, "--methods=finetune", f"--variant={VARIANT}",
                            "--seeds=0,1"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "results.json").read_text()) == rows
    assert "swd=" not in again.stderr  # no per-run progress line: no run happened


def test_each_exported_model_gets_a_face_rate_and_rescore_adds_a_missing_one(pair, finished, tmp_path):
    pytest.importorskip("cv2", reason="face_rate needs opencv-python-headless (the [metrics] extra)")
    source, target, _ = pair
    out, rows = finished
    assert all(0 <= r["best"]["face_rate"] <= 1 for r in rows)
    assert "face_rate" not in rows[0]["final"]  # measured on the exported model only
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    stripped = json.loads(json.dumps(rows))
    for row in stripped[:3]:
        del row["best"]["face_rate"]
    (copy / "results.json").write_text(json.dumps(stripped))
    (copy / "table.md").unlink()
    again = _compare(*_argv(source, target, copy, "--methods=finetune", f"--variant={VARIANT}", "--seeds=0,1",
                            "--rescore"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "rescored 3 finished run(s)" in again.stderr
    assert json.loads((copy / "results.json").read_text()) == rows  # the same samples: the same rates
    assert "face_rate (↑)" in (copy / "table.md").read_text().split("**Best checkpoint**")[1]


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(pair, finished):
    source, target, root = pair
    out = root / "killed"
    proc = subprocess.Popen(_argv(source, target, out, "--methods=finetune", "--seeds=0"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = out / "runs" / "finetune-seed0"
    deadline = time.time() + 300
    while not list(run_dir.glob("checkpoint-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    proc.wait()
    if (run_dir / "model.safetensors").exists():
        pytest.skip("the run finished before it could be killed")
    assert list(run_dir.glob("checkpoint-*"))

    resumed = _compare(*_argv(source, target, out, "--methods=finetune", "--seeds=0"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lineage = json.loads((run_dir / "lineage.json").read_text())
    assert lineage["training"]["args"]["resume"] == "latest"
    (row,) = [r for r in json.loads((out / "results.json").read_text()) if r["method"] == "finetune"]
    (uninterrupted,) = [r for r in finished[1] if (r["method"], r["seed"]) == ("finetune", 0)]
    assert row["curve"] == uninterrupted["curve"]  # CPU runs resume bit for bit


def test_a_metric_measured_on_fewer_seeds_says_on_how_many():
    from compare_methods import summarise

    rows = [{"method": "dap", "seed": s, "best": {"swd": 10.0 + s, **({"face_rate": 0.5} if s else {})}}
            for s in range(3)]
    table, stats = summarise(rows, "best")
    line = next(line for line in table.splitlines() if line.startswith("| dap |"))
    assert "| 11 ± 1 |" in line and "| 0.5 ± 0 (n=2) |" in line
    assert stats["dap"]["face_rate"] == (0.5, 0.0)


def test_the_figure_takes_each_method_from_its_first_seed_whose_run_folder_is_here(tmp_path):
    from compare_methods import SOURCE_ROW, figure_runs

    rows = [{"method": m, "seed": s} for m in (SOURCE_ROW, "dap", "rick", "cdc") for s in (0, 1, 2)]
    for folder in ("dap-seed0", "dap-seed1", "rick-seed2", "rick-seed1"):
        (tmp_path / "runs" / folder).mkdir(parents=True)
        (tmp_path / "runs" / folder / "config.json").write_text("{}")
    (tmp_path / "runs" / "cdc-seed0").mkdir()  # killed before its export: no config.json
    run_dirs, missing = figure_runs(rows, tmp_path)
    assert run_dirs == {"dap": tmp_path / "runs" / "dap-seed0", "rick (seed 1)": tmp_path / "runs" / "rick-seed1"}
    assert missing == ["cdc"]


def test_two_drivers_on_one_out_keep_each_others_finished_runs(tmp_path):
    from compare_methods import _write_rows

    results = tmp_path / "results.json"
    first = [{"method": "finetune", "seed": 0, "final": {"swd": 1.0}}]  # driver A read this at its start
    _write_rows(list(first), results)
    _write_rows([*first, {"method": "ewc", "seed": 0, "final": {"swd": 2.0}}], results)  # driver B records ewc
    _write_rows([*first, {"method": "adafm", "seed": 0, "final": {"swd": 3.0}}], results)  # A, unaware of ewc
    rows = json.loads(results.read_text())
    assert sorted((r["method"], r["seed"]) for r in rows) == [("adafm", 0), ("ewc", 0), ("finetune", 0)]
    _write_rows([{"method": "ewc", "seed": 0, "final": {"swd": 9.0}}], results)  # a rescored row replaces its old self
    rows = json.loads(results.read_text())
    assert len(rows) == 3 and next(r for r in rows if r["method"] == "ewc")["final"]["swd"] == 9.0
    # two drivers given the same seed both run its source row: driver B records it first, driver A reads it
    # back while recording another run, then records its own: the file keeps one row, A's
    driver_a = json.loads(results.read_text())
    _write_rows([*json.loads(results.read_text()), {"method": "source", "seed": 1, "final": {"swd": 4.0}}], results)
    driver_a.append({"method": "cdc", "seed": 1, "final": {"swd": 5.0}})
    _write_rows(driver_a, results)  # A now holds B's source row
    driver_a.append({"method": "source", "seed": 1, "final": {"swd": 4.5}})
    _write_rows(driver_a, results)
    rows = json.loads(results.read_text())
    sources = [r for r in rows if r["method"] == "source"]
    assert len(rows) == 5 and len(sources) == 1 and sources[0]["final"]["swd"] == 4.5


def test_every_method_of_a_large_comparison_gets_its_own_line_style():
    from compare_methods import method_styles

    methods = [f"method{i}" for i in range(25)]  # the sketches table has 14 rows; the default cycle repeats after 10
    styles = method_styles(methods)
    assert len({(s["color"], s["linestyle"]) for s in styles.values()}) == len(methods)
