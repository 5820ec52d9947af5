"""Sampling throughput: images/s at 64 px and 256 px (batch 8) and achieved GFLOP/s vs a conv peak.

    python scripts/bench_sampling.py [--device cpu|cuda] [--repeats 5]

The peak is a large 3x3 convolution timed in the same run (what this machine's conv kernels reach),
so the fraction says how well each generator's mix of small convs, modulation and up-sampling uses it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import conv_peak_gflops, count_flops, hardware, markdown_table, time_call  # noqa: E402


def models():
    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator
    from fsgen_hub.zoo import DIGIFACE_SOURCE

    torch.manual_seed(0)
    yield "DCGAN 64 px (DigiFace zoo model)", AutoGenerator.from_pretrained(DIGIFACE_SOURCE)
    yield "StyleGAN2 64 px (256-channel table, 4 mapping layers)", StyleGAN2Generator(
        StyleGAN2Config(resolution=64, style_dim=256, n_mlp=4, channels={"4": 256, "8": 256, "16": 256, "32": 128, "64": 64}))
    yield "StyleGAN2 256 px (rosinality FFHQ-256 config)", StyleGAN2Generator(StyleGAN2Config(resolution=256))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    peak = conv_peak_gflops(device)
    rows = []
    for name, G in models():
        G = G.to(device).eval()
        z = torch.randn(args.batch_size, G.z_dim, device=device)
        with torch.no_grad():
            flops = count_flops(lambda: G(z, noise_mode="const"))
            seconds = time_call(lambda: G(z, noise_mode="const"), device, repeats=args.repeats)
        gflops = flops / seconds / 1e9
        rows.append({"model": name, "params (M)": sum(p.numel() for p in G.parameters()) / 1e6,
                     "GFLOP/image": flops / args.batch_size / 1e9, "images/s": args.batch_size / seconds,
                     "GFLOP/s": gflops, "fraction of conv peak": gflops / peak})
        print(f"{name}: {args.batch_size / seconds:.1f} images/s", file=sys.stderr)
    print(f"hardware: {hardware(device)}; batch {args.batch_size}; conv peak {peak:.1f} GFLOP/s (3x3 conv, same run)\n")
    print(markdown_table(rows, ["model", "params (M)", "GFLOP/image", "images/s", "GFLOP/s", "fraction of conv peak"]))


if __name__ == "__main__":
    main()
