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

Every chunk is logged to ``<run>/chunks.jsonl`` (steps, wall time, hardware); every export rewrites the
shipped weights and the shipped training state together.

The export writes ``fsgen_hub/assets/stylegan2-faces64/``: G (EMA) and D in fp16 safetensors, lineage
with the summed wall time, its SWD against the training photos, a status line (whether samples are
recognisably faces yet: judged by a person from ``samples.png``, passed as ``--status``) and the card.
"""
from __future__ import annotations

import argparse
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
        return f"the shipped training state at step {last_step(run)} ({restored.name})"
    return f"the shipped weights at step {bootstrap_from_weights(run, data, device)} with a fresh optimiser"


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


def train_chunk(run: Path, data: Path, steps: int, device: str) -> float:
    from fsgen_hub import cli
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
    append_jsonl(run / "chunks.jsonl", record)
    return wall


def export(run: Path, data: Path, status: str, swd_samples: int) -> Path:
    from fsgen_hub import cards
    from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
    from fsgen_hub.data import load_images
    from fsgen_hub.metrics import evaluate
    from fsgen_hub.utils.io import append_jsonl, atomic_dir, read_jsonl

    if not (run / "lineage.json").is_file():
        raise SystemExit(f"{run} holds no finished chunk yet: run without --export-only first")
    G, D = AutoGenerator.from_pretrained(run).eval(), AutoDiscriminator.from_pretrained(run).eval()
    lineage = json.loads((run / "lineage.json").read_text())
    chunks = read_jsonl(run / "chunks.jsonl") if (run / "chunks.jsonl").is_file() else []
    training = lineage["training"]
    training["chunks"] = len(chunks)
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

    ASSET.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(ASSET) as tmp:  # the shipped folder is replaced whole or not at all
        G.half(), D.half()  # halves the shipped size; from_pretrained casts back to the model's float32
        G.save_pretrained(tmp, discriminator=D, lineage=lineage)
        shutil.copy2(run / "samples.png", tmp / "samples.png")
        reference, _ = load_images(data, 64)
        pick = torch.randperm(len(reference), generator=torch.Generator().manual_seed(0))[:swd_samples]
        (result,) = evaluate(AutoGenerator.from_pretrained(tmp), reference[pick], ["swd"], num_samples=swd_samples,
                             seed=0, step=training["steps"])
        result.protocol["reference"] = f"{swd_samples} random photos of faces64/train.parquet (seed 0)"  # not tensor[N]
        append_jsonl(tmp / "metrics.jsonl", {**result.to_record(), "model": MODEL_ID})  # not the temporary folder
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
    parser.add_argument("--swd-samples", type=int, default=1000)
    parser.add_argument("--status", default=STATUS_NOT_YET, help="status line for the card (look at samples.png first)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: this script needs ../shared/data/faces64/train.parquet")
    if not args.export_only:
        print(f"continuing from {prepare_run(args.run, args.data, args.device)}", flush=True)
        deadline, chunk_time = time.time() + args.minutes * 60, 0.0
        while time.time() + chunk_time < deadline:
            chunk_time = train_chunk(args.run, args.data, args.chunk_steps, args.device)
            print(f"chunk done: step {last_step(args.run)}, {chunk_time:.0f} s", flush=True)
    if not args.no_export:
        export(args.run, args.data, args.status, args.swd_samples)


if __name__ == "__main__":
    sys.exit(main())
