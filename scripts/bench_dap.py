"""DAP costs and gains: Fisher-tracking overhead per step, and the slimmed generator's sampling speed-up.

    python scripts/bench_dap.py [--steps 60] [--prune-steps 200] [--tau 0.05] [--device cpu|cuda]

1. Overhead: ``dap`` vs ``finetune`` mean step time (DigiFace DCGAN → embedded target, batch 8), each in
   its own subprocess, alternated twice (finetune, dap, finetune, dap) and the faster of each kept, so
   machine drift hits both. Target: ≤ 1.10×.
2. Slimming: a DAP run of ``--prune-steps`` steps; its masked generator vs the physically slimmed one
   (``fsgen_hub.models.slim``): images/s at batch 8 next to the FLOP reduction, and the max abs
   difference of their images (they must agree).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench_common import count_flops, hardware, markdown_table, time_call  # noqa: E402


def step_time(method: str, args) -> dict:
    cmd = [sys.executable, str(HERE / "bench_train.py"), "--worker", method, f"--steps={args.steps}", "--skip=5",
           f"--device={args.device}", "--batch-size=8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--prune-steps", type=int, default=200)
    parser.add_argument("--tau", type=float, default=0.05)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    runs = {"finetune": [], "dap": []}
    for _ in range(2):
        for method in runs:
            runs[method].append(step_time(method, args)["step_s"])
    finetune, dap = min(runs["finetune"]), min(runs["dap"])
    print(f"hardware: {hardware(device)}\n")
    print("## Fisher-tracking overhead (mean step time, DigiFace DCGAN 64 px, batch 8)\n")
    print(markdown_table([{"finetune ms/step": finetune * 1000, "dap ms/step": dap * 1000, "dap / finetune": dap / finetune,
                           "target": "≤ 1.10"}], ["finetune ms/step", "dap ms/step", "dap / finetune", "target"]))

    from fsgen_hub.models.slim import slim_generator
    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import AdaptationTrainer

    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(method="dap", method_options={"tau": args.tau}, steps=args.prune_steps, batch_size=8,
                                  warmup_steps=min(250, args.prune_steps // 4), no_eval=True,
                                  output_dir=str(Path(tmp) / "run"), save_every=0, sample_every=0, device=args.device)
        trainer = AdaptationTrainer(targs)
        out = trainer.train()
        from fsgen_hub.auto import AutoGenerator

        masked = AutoGenerator.from_pretrained(out).to(device).eval()
    layer_masks = trainer.method.masks["G"].filter_layer_masks()
    slim = slim_generator(masked, layer_masks).to(device).eval()
    z = torch.randn(8, masked.z_dim, device=device)
    rows = []
    with torch.no_grad():
        difference = float((masked(z, noise_mode="const") - slim(z, noise_mode="const")).abs().max())
        for name, G in (("masked (same shapes, zeros)", masked), ("slimmed", slim)):
            flops = count_flops(lambda: G(z, noise_mode="const"))
            seconds = time_call(lambda: G(z, noise_mode="const"), device, repeats=9)
            rows.append({"generator": name, "params": sum(p.numel() for p in G.parameters()), "GFLOP/image": flops / 8 / 1e9,
                         "images/s": 8 / seconds})
    pruned = sum(int(m.sum()) for m in layer_masks.values())
    total = sum(m.numel() for m in layer_masks.values())
    rows[1]["FLOPs vs masked"] = rows[1]["GFLOP/image"] / rows[0]["GFLOP/image"]
    rows[1]["speed-up"] = rows[1]["images/s"] / rows[0]["images/s"]
    print(f"\n## Slimmed export after {args.prune_steps} DAP steps (tau {args.tau}): {pruned}/{total} filters pruned; "
          f"max |masked − slimmed| = {difference:.2e}\n")
    print(markdown_table(rows, ["generator", "params", "GFLOP/image", "images/s", "FLOPs vs masked", "speed-up"]))


if __name__ == "__main__":
    main()
