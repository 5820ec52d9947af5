"""Train (or continue training) the project's StyleGAN2 faces source and ship it as the zoo id ``fsgen/stylegan2-faces64``.

    python scripts/build_faces64_source.py --minutes 60        # continue training for ~60 min, then export
    python scripts/build_faces64_source.py --export-only       # export the newest checkpoint as it is

Training is plain ``fsgen train`` (the adaptation trainer from random initialisation) on
``../shared/data/faces64/train.parquet`` (23,317 UTKFace photos at 64 px), run in resumable chunks of
``--chunk-steps`` so it can go on across sessions and machines. Where it continues from, in this order:

1. ``--run`` (default ``runs/stylegan2-faces64``) holds checkpoints: ``--resume latest``, bit for bit.
2. Otherwise the shipped training state ``training_states/stylegan2-faces64/`` (in git, not in the package:
   raw G in float16, Adam's second moments in bfloat16, step and loop state; the EMA G and D are the shipped
   weights of ``fsgen_hub/assets/stylegan2-faces64/``) is restored into ``--run`` first: the run goes on from
   the shipped step on a fresh clone, closely (half precision) rather than bit for bit.
3. Otherwise (weights shipped without a state) the shipped EMA G and D start the run at their step with a
   fresh optimiser.

Every chunk is logged to ``<run>/chunks.jsonl`` (steps, wall time, hardware and, unless ``--swd-samples 0``, the
SWD of its EMA G against 1,000 training photos); a run that continues from the shipped files first copies the
shipped lineage's totals there, so hours and chunks add up over the whole training. Every export rewrites the
shipped weights and the shipped training state together, keeps the SWD of every earlier step in
``metrics.jsonl`` and draws them as ``swd_curve.png`` (shown on the card).

The export writes ``fsgen_hub/assets/stylegan2-faces64/``: G (EMA) and D in fp16 safetensors, lineage
with the summed wall time, its SWD against the training photos, a status line (whether samples are
recognisably faces yet: judged by a person from ``samples.png``, passed as ``--status``) and the card.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "faces64" / "train.parquet"
ASSET = ROOT / "fsgen_hub" / "assets" / "stylegan2-faces64"
STATE = ROOT / "training_states" / "stylegan2-faces64"
MODEL_ID = "fsgen/stylegan2-faces64"
# small enough to train on CPU (~1/4 of the 4.5 M-parameter 256-channel table's FLOPs), big enough to draw faces
RESOLUTION = 64
MODEL_CONFIG = {"style_dim": 128, "n_mlp": 4, "channels": {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32}}
TRAIN_ARGS = ["--batch-size", "16", "--r1-gamma", "0.1", "--r1-every", "16", "--ema-half-life", "200",
              "--augment", "none", "--save-every", "100", "--keep-checkpoints", "2", "--sample-every", "100",
              "--log-every", "20", "--seed", "0"]
# SWD of 1,000 training photos against 1,000 other ones (same protocol): the floor the source's SWD is judged by
REAL_VS_REAL_SWD = 8.7
STATUS_NOT_YET = ("in training: samples are not recognisably faces yet, so it is not good enough to adapt from; "
                  "`scripts/build_faces64_source.py --minutes N` continues the run")


def last_step(run: Path) -> int:
    steps = [int(p.name.split("-")[-1]) for p in run.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(steps, default=0)


def train_argv(run: Path, data: Path, steps: int, device: str) -> list[str]:
    return ["train", "--architecture", "stylegan2", "--resolution", str(RESOLUTION), "--model-config", json.dumps(MODEL_CONFIG),
            "--data", str(data), "--output-dir", str(run), "--steps", str(steps), "--device", device, *TRAIN_ARGS]


def prepare_run(run: Path, data: Path, device: str) -> str:
    """Make ``run`` resumable when it is not (see the module docstring); returns where the run goes on from."""
    from fsgen_hub.training import checkpointing as ckpt

    if ckpt.list_checkpoints(run):
        return f"its own checkpoint at step {last_step(run)} (bit for bit)"
    if run.exists() and any(run.iterdir()):
        raise SystemExit(f"{run} holds no complete checkpoint but is not empty: move it away or pass another --run")
    if (STATE / ckpt.TRAINER_STATE_NAME).is_file():
        restored = ckpt.restore_training_state(STATE, ASSET, run)
        carry_history(run)
        return f"the shipped training state at step {last_step(run)} ({restored.name})"
    step = bootstrap_from_weights(run, data, device)
    carry_history(run)
    return f"the shipped weights at step {step} with a fresh optimiser"


def carry_history(run: Path) -> None:
    """Start ``<run>/chunks.jsonl`` with the shipped model's training so far, so that the next export's hours,
    chunk count and hardware cover the whole training, not only the chunks of this run folder."""
    from fsgen_hub.utils.io import append_jsonl

    training = json.loads((ASSET / "lineage.json").read_text())["training"]
    append_jsonl(run / "chunks.jsonl", {"from_step": 0, "to_step": int(training["steps"]),
                                         "wall_time_s": training.get("wall_time_s", 0.0), "chunks": training.get("chunks", 1),
                                         "hardware": training.get("hardware", "not recorded"),
                                         "carried_from": "the shipped lineage (training before this run folder)"})


@functools.lru_cache(maxsize=1)  # the same photos after every chunk: read the 23k-image parquet once per process
def reference_photos(data: Path, samples: int) -> torch.Tensor:
    from fsgen_hub.data import load_images

    reference, _ = load_images(data, RESOLUTION)
    return reference[torch.randperm(len(reference), generator=torch.Generator().manual_seed(0))[:samples]].clone()


def swd_against_photos(G, data: Path, samples: int, step: int):
    """SWD of ``samples`` samples (seed 0) against ``samples`` random training photos (seed 0): the source's
    quality number, the same protocol at every step so that the curve compares like with like."""
    from fsgen_hub.metrics import evaluate

    (result,) = evaluate(G, reference_photos(data, samples), ["swd"], num_samples=samples, seed=0, step=step)
    result.protocol["reference"] = f"{samples} random photos of faces64/train.parquet (seed 0)"  # not tensor[N]
    return result


def bootstrap_from_weights(run: Path, data: Path, device: str) -> int:
    """checkpoint-<shipped step> from the shipped EMA G (as G and EMA G) and D, with fresh Adam state: one
    throw-away training step gives a checkpoint of the right layout and run identity, whose weights and
    step are then replaced."""
    from safetensors.torch import load_file, save_file

    from fsgen_hub import cli
    from fsgen_hub.training import checkpointing as ckpt
    from fsgen_hub.utils.io import write_json

    step = int(json.loads((ASSET / "lineage.json").read_text())["training"]["steps"])
    scratch = run.parent / f".{run.name}.bootstrap"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        if cli.main(train_argv(scratch, data, 1, device) + ["--no-eval"]) != 0:
            raise SystemExit("the one-step bootstrap run failed; see its error above")
        (first,) = ckpt.list_checkpoints(scratch)
        fp32 = {name: {k: v.float() for k, v in load_file(str(ASSET / f)).items()}
                for name, f in {"generator_ema": "model.safetensors", "discriminator": "discriminator/model.safetensors"}.items()}
        fp32["generator"] = fp32["generator_ema"]
        for name, tensors in fp32.items():
            save_file(tensors, str(first / f"{name}.safetensors"))
        for name in ("optimizer_G", "optimizer_D"):
            if (first / f"{name}.json").is_file():
                tree = ckpt.load_tree(first, name)
                (first / f"{name}.safetensors").unlink(missing_ok=True)
                ckpt.save_tree({**tree, "state": {}}, first, name)
        loop = {**ckpt.load_tree(first, "loop_state"), "step": step}
        ckpt.save_tree(loop, first, "loop_state")
        trainer_state = ckpt.read_json(first / ckpt.TRAINER_STATE_NAME)
        files = [f for f in trainer_state["files"] if (first / f).is_file()]
        write_json(first / ckpt.TRAINER_STATE_NAME, {**trainer_state, "step": step, "files": files,
                                                     "restored_from": "shipped weights, fresh optimiser"})
        run.mkdir(parents=True, exist_ok=True)
        os.replace(first, run / f"{ckpt.CHECKPOINT_PREFIX}{step}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return step


def train_chunk(run: Path, data: Path, steps: int, device: str, swd_samples: int = 0) -> float:
    from fsgen_hub import cli
    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.utils.io import append_jsonl

    start = last_step(run)
    argv = train_argv(run, data, start + steps, device)
    if start:
        argv += ["--resume", "latest"]
    t0 = time.time()
    if cli.main(argv) != 0:
        raise SystemExit(f"fsgen train failed; the run folder {run} keeps its last checkpoint")
    wall = time.time() - t0
    lineage = json.loads((run / "lineage.json").read_text())
    record = {"from_step": start, "to_step": start + steps, "wall_time_s": round(wall, 1),
              "hardware": lineage["training"]["hardware"], "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if swd_samples:  # measured after the chunk's clock stopped: the hours are training hours
        result = swd_against_photos(AutoGenerator.from_pretrained(run).eval(), data, swd_samples, start + steps)
        record.update(swd=round(result.value, 3), swd_record={**result.to_record(), "model": MODEL_ID})
    append_jsonl(run / "chunks.jsonl", record)
    return wall


def swd_history(records: list[dict], swd_samples: int) -> list[dict]:
    """One SWD record per step (the latest), from shipped metrics and chunk records, of the protocol in use."""
    by_step = {}
    for record in records:
        if record.get("metric") == "swd" and record.get("step") is not None \
                and (record.get("protocol") or {}).get("num_samples") == swd_samples:
            by_step[int(record["step"])] = record
    return [by_step[k] for k in sorted(by_step)]


def plot_swd_curve(history: list[dict], path: Path, floor: float | None = None) -> None:
    from fsgen_hub.utils.extras import require

    matplotlib = require("matplotlib", "the SWD curve")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    steps, values = [r["step"] for r in history], [r["value"] for r in history]
    ax.plot(steps, values, "o-", color="tab:blue", label="samples vs training photos")
    if floor is not None:
        ax.axhline(floor, color="grey", ls="--", lw=1, label=f"real vs real photos ({floor:.1f})")
    ax.set_xlabel("training step (batch 16)")
    ax.set_ylabel("SWD ×1e3 (lower is better)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{MODEL_ID}: SWD over training", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def export(run: Path, data: Path, status: str, swd_samples: int) -> Path:
    from fsgen_hub import cards
    from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
    from fsgen_hub.utils.io import append_jsonl, atomic_dir, read_jsonl

    if not (run / "lineage.json").is_file():
        raise SystemExit(f"{run} holds no finished chunk yet: run without --export-only first")
    G, D = AutoGenerator.from_pretrained(run).eval(), AutoDiscriminator.from_pretrained(run).eval()
    lineage = json.loads((run / "lineage.json").read_text())
    chunks = read_jsonl(run / "chunks.jsonl") if (run / "chunks.jsonl").is_file() else []
    training = lineage["training"]
    training["chunks"] = sum(int(c.get("chunks", 1)) for c in chunks)
    training["wall_time_s"] = round(sum(c["wall_time_s"] for c in chunks), 1) or training["wall_time_s"]
    training["hardware"] = "; ".join(sorted({c["hardware"] for c in chunks})) or training["hardware"]
    training["images_seen"] = training["steps"] * training["batch_size"]
    lineage["base_model"] = {"id": None, "architecture": "stylegan2", "license": "utkface-non-commercial-research",
                             "data_terms": "UTKFace: non-commercial research use only; photos of real, identifiable "
                                           "people whose copyright stays with the owners"}
    lineage["data_terms"] = lineage["base_model"]["data_terms"]
    # the shipped lineage names the data portably (not this machine's path); every photo was used, none drawn
    data_name = "faces64/train.parquet (UTKFace, 64 px; ../shared/data in this project)"
    lineage["data"].update(id=data_name, shot_seed=None)
    training["args"].update(data=data_name, output_dir="runs/stylegan2-faces64")
    lineage["status"] = status
    lineage["weights_dtype"] = "float16 (loaded into float32 parameters)"
    lineage.setdefault("artifacts", {})["training_curve"] = "swd_curve.png"

    ASSET.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(ASSET) as tmp:  # the shipped folder is replaced whole or not at all
        G.half(), D.half()  # halves the shipped size; from_pretrained casts back to the model's float32
        G.save_pretrained(tmp, discriminator=D, lineage=lineage)
        shutil.copy2(run / "samples.png", tmp / "samples.png")
        # the shipped fp16 weights are what is measured: the number describes what users load
        result = swd_against_photos(AutoGenerator.from_pretrained(tmp), data, swd_samples, training["steps"])
        final = {**result.to_record(), "model": MODEL_ID}  # not the temporary folder
        earlier = read_jsonl(ASSET / "metrics.jsonl") if (ASSET / "metrics.jsonl").is_file() else []
        history = [r for r in swd_history(earlier + [c["swd_record"] for c in chunks if "swd_record" in c], swd_samples)
                   if r["step"] < training["steps"]] + [final]  # earlier steps draw the curve; the card shows the last
        for record in history:
            append_jsonl(tmp / "metrics.jsonl", record)
        plot_swd_curve(history, tmp / "swd_curve.png", REAL_VS_REAL_SWD)
        cards.write_model_card(tmp, repo_id=MODEL_ID)  # titled by its zoo id, not the temporary folder
    size = sum(p.stat().st_size for p in ASSET.rglob("*") if p.is_file()) / 2**20
    print(f"exported step {training['steps']} to {ASSET} ({size:.1f} MiB); swd {result.value:.2f}")
    from fsgen_hub.training import checkpointing as ckpt

    state_size = ckpt.export_training_state(ckpt.list_checkpoints(run)[-1], ASSET, STATE) / 2**20
    print(f"training state of step {training['steps']} to {STATE} ({state_size:.1f} MiB)")
    return ASSET


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "stylegan2-faces64")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget of this invocation")
    parser.add_argument("--chunk-steps", type=int, default=200)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--export-only", action="store_true")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--swd-samples", type=int, default=1000,
                        help="samples and photos of the SWD measured after every chunk and at export (0: only at export, with 1,000)")
    parser.add_argument("--status", default=STATUS_NOT_YET, help="status line for the card (look at samples.png first)")
    args = parser.parse_args(argv)
    if args.swd_samples < 0:
        parser.error("--swd-samples must be 0 (measure only at export) or a number of samples")
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: this script needs ../shared/data/faces64/train.parquet")
    if not args.export_only:
        print(f"continuing from {prepare_run(args.run, args.data, args.device)}", flush=True)
        deadline, chunk_time = time.time() + args.minutes * 60, 0.0
        while time.time() + chunk_time < deadline:
            chunk_time = train_chunk(args.run, args.data, args.chunk_steps, args.device, args.swd_samples)
            print(f"chunk done: step {last_step(args.run)}, {chunk_time:.0f} s", flush=True)
    if not args.no_export:
        export(args.run, args.data, args.status, args.swd_samples or 1000)


if __name__ == "__main__":
    sys.exit(main())
