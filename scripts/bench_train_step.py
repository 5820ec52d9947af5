"""StyleGAN2 training step (G + D, lazy R1) and sampling: today's implementation vs the fast one, in one run.

    python scripts/bench_train_step.py [--configs faces64,rosinality64] [--rounds 2] [--steps 3]
                                       [--batch-size 16] [--device cpu|cuda] [--bf16] [--compile] [--json FILE]

Variants (selected per process, so each one's peak memory is its own):

- ``today``: every modulated conv ``grouped`` (a per-sample kernel, one grouped convolution), the
  step-by-step FIR resampling (zero insertion, pad, conv, subsample: ``ops.upfirdn2d_reference``) and D's
  parameters trainable in the G phase, D's activations in the default layout (as the trainer was);
- ``fast``: modulated convs on ``auto`` (the shared-kernel "non-fused" convolution where it measured
  faster, see ``stylegan2.choose_modconv``), the copy-free FIR resampling, channels-last activations in D
  on CPU, and no gradients for D's own parameters in the G phase (``trainer._frozen_outside``);
- ``fast_bf16`` (only with ``--bf16``): ``fast`` with both phases and R1 under bfloat16 autocast, what
  ``fsgen train --mixed-precision bf16`` does through Accelerate; not exact (bf16 keeps 8 bits of mantissa), so
  speed only: whether a GAN trains as well in bf16 is not measured here. On CPUs with AMX or AVX-512 BF16
  oneDNN runs the convolutions in bf16; elsewhere autocast may be slower than fp32;
- ``compiled`` (only with ``--compile``): ``fast`` with G and D wrapped in ``torch.compile`` (inductor) for the
  D and G phases; R1's double backward stays eager (compiled graphs do not support it). The compile time
  (in the first two steps' CPU time, column "warm-up CPU-s") is to be amortised over a chunk; sampling stays eager.

One training step is what ``fsgen train`` does per batch: a D phase (G without grad, D on real and fake,
logistic loss, Adam) and a G phase (G and D with grad, non-saturating loss, Adam), plus R1 on the real
images every ``--r1-every`` steps (lazy R1). The R1 step is timed separately and amortised, so a short run
counts it exactly once per ``--r1-every`` steps. Variants alternate round by round (the machine may be
shared) and the best round of each is reported. Images per CPU-second (process CPU time) are printed next
to images per wall-second: on a shared machine the wall clock also counts the time other processes held
the cores, the CPU time only this process's work (with ``--threads 1`` it is the wall time of an idle core). Peak memory: the process's peak resident set above what it
held after building the models (CPU) or the peak CUDA allocation (GPU).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import hardware, markdown_table  # noqa: E402

CONFIGS = {
    # fsgen/stylegan2-faces64 (fsgen_hub/assets/stylegan2-faces64/config.json)
    "faces64": {"resolution": 64, "style_dim": 128, "n_mlp": 4,
                "channels": {"4": 128, "8": 128, "16": 128, "32": 64, "64": 32}},
    # the 64 px rosinality-architecture config of scripts/bench_sampling.py (256-channel table, 4 mapping layers)
    "rosinality64": {"resolution": 64, "style_dim": 256, "n_mlp": 4,
                     "channels": {"4": 256, "8": 256, "16": 256, "32": 128, "64": 64}},
}
VARIANTS = ("today", "fast")
COMPILED = "compiled"
BF16 = "fast_bf16"


def use_variant(variant: str, G, D) -> None:
    from fsgen_hub.models import ops
    from fsgen_hub.models.stylegan2 import set_modconv_implementation

    if variant == "today":
        ops.upfirdn2d = ops.upfirdn2d_reference  # Blur/Upsample look the function up at call time
        set_modconv_implementation(G, "grouped")
        D.channels_last = False
    else:
        set_modconv_implementation(G, "auto")


def worker(args) -> dict:
    import resource

    import torch

    from fsgen_hub.losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty
    from fsgen_hub.models.stylegan2 import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = StyleGAN2Config.from_dict(CONFIGS[args.config])
    G, D = StyleGAN2Generator(config).to(device), StyleGAN2Discriminator(config).to(device)
    use_variant(args.worker, G, D)
    G_run, D_run = G, D  # what the D and G phases call; R1 always runs D eagerly
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.worker == BF16)
    if args.worker == COMPILED:
        G_run, D_run = torch.compile(G, dynamic=False), torch.compile(D, dynamic=False)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    batch = args.batch_size
    real = torch.rand(batch, 3, 64, 64, device=device) * 2 - 1

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step(with_r1: bool) -> tuple[float, float]:
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        G.requires_grad_(False), D.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with amp:
            with torch.no_grad():
                fake = G_run(torch.randn(batch, config.style_dim, device=device))
            loss = d_logistic_loss(D_run(real), D_run(fake))
            if with_r1:
                real_r1 = real.detach().requires_grad_(True)
                loss = loss + args.r1_gamma / 2 * r1_penalty(D(real_r1), real_r1) * args.r1_every
        loss.backward()
        opt_d.step()
        # today's trainer leaves D's parameters trainable in the G phase (their gradients are computed and
        # dropped); the fast step freezes them there, as ``trainer._frozen_outside`` does
        G.requires_grad_(True), D.requires_grad_(args.worker == "today")
        opt_g.zero_grad(set_to_none=True)
        with amp:
            loss = g_nonsaturating_loss(D_run(G_run(torch.randn(batch, config.style_dim, device=device))))
        loss.backward()
        opt_g.step()
        sync()
        return time.perf_counter() - t0, time.process_time() - c0

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm_up_cpu_s = step(True)[1] + step(False)[1]  # allocator, oneDNN kernel selection, compilation; R1 included
    plain = [min(t) for t in zip(*(step(False) for _ in range(args.steps)))]  # (wall, cpu)
    with_r1 = [min(t) for t in zip(*(step(True) for _ in range(max(1, args.steps // 2))))]
    step_s, step_cpu_s = (((args.r1_every - 1) * p + r) / args.r1_every for p, r in zip(plain, with_r1))
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before)

    G.eval()
    z = torch.randn(args.sample_batch, config.style_dim, device=device)
    with torch.no_grad(), amp:
        G(z)
        times, cpu_times = [], []
        for _ in range(args.steps):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            G(z)
            sync()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    return {"config": args.config, "variant": args.worker, "train_images_s": batch / step_s,
            "train_images_cpu_s": batch / step_cpu_s, "step_s": step_s, "plain_step_s": plain[0], "r1_step_s": with_r1[0],
            "peak_mb": peak, "warm_up_cpu_s": warm_up_cpu_s, "sample_images_s": args.sample_batch / min(times),
            "sample_images_cpu_s": args.sample_batch / min(cpu_times)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="faces64,rosinality64", help=f"comma-separated of {sorted(CONFIGS)}")
    parser.add_argument("--rounds", type=int, default=2, help="alternating today/fast rounds; the best of each is kept")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round (best taken)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sample-batch", type=int, default=16)
    parser.add_argument("--r1-gamma", type=float, default=0.1)
    parser.add_argument("--r1-every", type=int, default=16)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--config", default="faces64", help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true",
                        help="add the torch.compile variant (its compilation takes minutes on CPU)")
    parser.add_argument("--bf16", action="store_true",
                        help="add the bfloat16-autocast variant of the fast step (speed only; not exact)")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.worker:
        print(json.dumps(worker(args)))
        return
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"error: unknown --configs {unknown}: choose from {sorted(CONFIGS)}")
    passthrough = [f"--steps={args.steps}", f"--batch-size={args.batch_size}", f"--sample-batch={args.sample_batch}",
                   f"--r1-gamma={args.r1_gamma}", f"--r1-every={args.r1_every}", f"--device={args.device}"]
    passthrough += [f"--threads={args.threads}"] if args.threads else []
    variants = VARIANTS + ((BF16,) if args.bf16 else ()) + ((COMPILED,) if args.compile else ())
    best: dict[tuple[str, str], dict] = {}
    for config in configs:
        for round_ in range(args.rounds):
            for variant in variants if round_ % 2 == 0 else variants[::-1]:
                proc = subprocess.run([sys.executable, __file__, "--worker", variant, f"--config={config}", *passthrough],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"error: {config}/{variant} failed: {proc.stderr.strip().splitlines()[-1:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{config} {variant} round {round_}: train {row['train_images_s']:.2f} img/s "
                      f"({row['train_images_cpu_s']:.2f} per CPU-s), sample {row['sample_images_s']:.1f} img/s "
                      f"({row['sample_images_cpu_s']:.1f} per CPU-s), peak +{row['peak_mb']:.0f} MB", file=sys.stderr)
                key = (config, variant)
                previous = best.get(key)
                if previous is None:
                    best[key] = row
                else:  # best of each measure over the rounds; peak memory: the smallest seen
                    for field in ("train_images_s", "train_images_cpu_s", "sample_images_s", "sample_images_cpu_s"):
                        previous[field] = max(previous[field], row[field])
                    previous["peak_mb"] = min(previous["peak_mb"], row["peak_mb"])
                    previous["warm_up_cpu_s"] = min(previous["warm_up_cpu_s"], row["warm_up_cpu_s"])
    rows = []
    for config in configs:
        today = best[(config, "today")]
        for row in (best[(config, variant)] for variant in variants):
            rows.append({"config": config, "implementation": row["variant"],
                         "train images/s": row["train_images_s"], "train images/CPU-s": row["train_images_cpu_s"],
                         "train speed-up (CPU-s)": row["train_images_cpu_s"] / today["train_images_cpu_s"],
                         "train peak MB": row["peak_mb"], "warm-up CPU-s": row["warm_up_cpu_s"], "sample images/s": row["sample_images_s"],
                         "sample images/CPU-s": row["sample_images_cpu_s"],
                         "sample speed-up (CPU-s)": row["sample_images_cpu_s"] / today["sample_images_cpu_s"]})
    print(f"hardware: {hardware(torch.device(args.device))}; batch {args.batch_size} (R1 every {args.r1_every} steps, "
          f"amortised), sampling batch {args.sample_batch}; best of {args.rounds} alternating rounds × {args.steps} steps\n")
    print(markdown_table(rows, ["config", "implementation", "train images/s", "train images/CPU-s", "train speed-up (CPU-s)",
                                "train peak MB", "warm-up CPU-s", "sample images/s", "sample images/CPU-s", "sample speed-up (CPU-s)"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
