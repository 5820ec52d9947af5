"""Seeds that name one image (NVlabs ``--seeds``), diffusers' ``generator=``, and ``fsgen sample --seeds``."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import tiny_stylegan2_config
from PIL import Image

from fsgen_hub.cli import main as cli_main
from fsgen_hub.commands.sample import parse_seeds
from fsgen_hub.models.dcgan import DCGANConfig, DCGANGenerator
from fsgen_hub.models.stylegan2 import StyleGAN2Generator
from fsgen_hub.utils.errors import FsgenError


@pytest.fixture
def tiny_stylegan2():
    torch.manual_seed(0)
    G = StyleGAN2Generator(tiny_stylegan2_config(channels=4))
    with torch.no_grad():  # noise strengths start at 0: make the noise visible
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(0.5)
    return G


def test_a_seed_names_one_image_whatever_the_count_and_batch(tiny_dcgan):
    G, _ = tiny_dcgan
    alone = G.sample(seeds=[5], output_type="pt")
    among = G.sample(seeds=[3, 5, 7], batch_size=2, output_type="pt")
    assert torch.equal(alone[0], among[1])
    assert not torch.equal(among[0], among[1])
    # the latent is NVlabs gen_images.py's: np.random.RandomState(seed).randn(1, z_dim)
    expected = torch.from_numpy(np.random.RandomState(5).randn(1, G.z_dim)).float()
    assert torch.equal(G.seed_latents([5]), expected)
    assert torch.equal(alone, G.sample(z=expected, output_type="pt"))


def test_random_noise_follows_each_images_seed(tiny_stylegan2):
    G = tiny_stylegan2
    alone = G.sample(seeds=[9], noise_mode="random", output_type="pt")
    among = G.sample(seeds=[1, 9], noise_mode="random", batch_size=2, output_type="pt")
    assert torch.equal(alone[0], among[1])
    const = G.sample(seeds=[9], noise_mode="const", output_type="pt")
    assert not torch.equal(alone, const)  # the noise does change the image, so the test above could fail


def test_generator_argument_and_the_batch_seed(tiny_dcgan):
    G, _ = tiny_dcgan
    drawn = G.sample(3, generator=torch.Generator().manual_seed(11), output_type="pt")
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(11))
    assert torch.equal(drawn, G.sample(z=z, output_type="pt"))
    per_image = G.sample(generator=[torch.Generator().manual_seed(s) for s in (4, 6)], output_type="pt")
    assert per_image.shape[0] == 2
    assert torch.equal(per_image[1], G.sample(generator=torch.Generator().manual_seed(6), output_type="pt")[0])
    # n with seed= keeps its meaning: one stream of n latents named by the seed
    assert torch.equal(G.sample(3, seed=5, output_type="pt"), G.sample(z=G.make_latents(3, 5), output_type="pt"))
    with pytest.raises(ValueError, match="only one of"):
        G.sample(seeds=[1], z=z)
    with pytest.raises(ValueError, match="n=2 but 3"):
        G.sample(2, z=z)


def test_grayscale_models_give_rgb_images():
    torch.manual_seed(0)
    G = DCGANGenerator(DCGANConfig(resolution=16, nz=8, ngf=4, nc=1))
    images = G.sample(seeds=[0, 1], output_type="pt")
    assert images.shape == (2, 3, 16, 16) and torch.equal(images[:, 0], images[:, 2])
    assert G.sample(seeds=[0])[0].mode == "RGB"


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    for bad in ("3-1", "a", "1,,2", "-4", "5000000000"):
        with pytest.raises(FsgenError):
            parse_seeds(bad)


def test_fsgen_sample_seeds_writes_one_png_per_seed(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    outdir, grid = tmp_path / "out", tmp_path / "grid.png"
    assert cli_main(["sample", str(tmp_path / "m"), "--seeds", "0-2,5", "--truncation", "0.7", "--noise-mode", "const",
                     "--outdir", str(outdir), "--out", str(grid), "--batch-size", "3"]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0005.png"]
    assert grid.is_file()
    assert cli_main(["sample", str(tmp_path / "m"), "--seeds", "5", "--truncation", "0.7", "--outdir", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "seed0005.png").read_bytes() == (outdir / "seed0005.png").read_bytes()
    expected = G.sample(seeds=[5], truncation=0.7, output_type="np")[0]
    assert np.array_equal(np.asarray(Image.open(outdir / "seed0005.png")), expected)


def test_fsgen_sample_seed_errors_are_one_line(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    for extra in (["--seeds", "9-1"], ["--seeds", "1", "--num", "4"]):
        result = subprocess.run([sys.executable, "-m", "fsgen_hub", "sample", str(tmp_path / "m"), *extra,
                                 "--outdir", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()
