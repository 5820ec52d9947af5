"""Files from strangers (checkpoints, pickles, config.json, images) and what `fsgen convert` may replace.

Issue 16 items 2, 3 and 7. Every attack file is made here and is small; the bounds refuse them before
anything large is allocated.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import stat
import struct
import zlib

import pytest
import torch
from PIL import Image
from test_nvlabs_pickle import build_tree, fake_torch_utils  # noqa: F401  (fixture)

from fsgen_hub import cli
from fsgen_hub.auto import AutoGenerator
from fsgen_hub.data import load_images
from fsgen_hub.models.convert import convert_checkpoint
from fsgen_hub.models.convert_stylegan2 import convert_nvlabs, load_nvlabs_pickle
from fsgen_hub.models.stylegan2 import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator
from fsgen_hub.utils.errors import CheckpointError, DataError

TINY = {"resolution": 16, "style_dim": 8, "n_mlp": 1, "channels": {"4": 4, "8": 4, "16": 4}}


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert len(text.splitlines()) == 1 and "\x1b" not in text, text
    return text


# ------------------------------------------------------------------------------------- item 2
def test_convert_never_deletes_its_input_or_a_folder_that_is_not_a_model(tmp_path, tiny_dcgan, capsys):
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    torch.save(tiny_dcgan[0].state_dict(), ckpts / "a.pt")
    (ckpts / "notes.txt").write_text("sibling")
    # OUT is the folder holding SRC: refused even with --overwrite
    for extra in ([], ["--overwrite"]):
        assert cli.main(["convert", str(ckpts / "a.pt"), str(ckpts), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1 and "contains the input" in err
        assert (ckpts / "a.pt").is_file() and (ckpts / "notes.txt").read_text() == "sibling"
    # a non-empty folder that is not a model folder: refused, then replaced on request
    other = tmp_path / "projects"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    assert cli.main(["convert", str(ckpts / "a.pt"), str(other)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (other / "thesis.tex").read_text() == "years of work"
    assert cli.main(["convert", str(ckpts / "a.pt"), str(other), "--overwrite"]) == 0
    assert not (other / "thesis.tex").exists() and (other / "model.safetensors").is_file()
    # an fsgen_hub model folder is replaced as before (re-converting), and SRC stays as it was
    assert cli.main(["convert", str(ckpts / "a.pt"), str(other)]) == 0
    assert torch.load(ckpts / "a.pt", weights_only=True).keys() == tiny_dcgan[0].state_dict().keys()


# ------------------------------------------------------------------------------------- item 3
@pytest.mark.parametrize("field, value, message", [
    ("channels", {"4": 8000, "8": 4, "16": 4}, r"channels\[4\] must be between 1 and 4096, got 8000"),
    ("n_mlp", 30000, "n_mlp must be between 1 and 64"),
    ("style_dim", 60000, "style_dim must be between 1 and 4096"),
    ("channels", {"4": 4000, "8": 4000, "16": 4000}, "parameters, more than"),
])
def test_huge_sizes_in_config_json_are_refused_before_allocating(tmp_path, field, value, message):
    folder = tmp_path / "model"
    StyleGAN2Generator(StyleGAN2Config(**TINY)).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as info:
        AutoGenerator.from_pretrained(folder)
    one_line(info)


def test_safetensors_header_is_checked_before_tensors_are_read(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "model"
    G = StyleGAN2Generator(StyleGAN2Config(**TINY))
    G.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in G.state_dict().items()}
    state["style.1.weight"] = state["style.1.weight"].to(torch.int32)  # right shape, wrong kind of data
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="stored as I32") as info:
        AutoGenerator.from_pretrained(folder)
    one_line(info)


def test_zero_stride_tensors_in_a_pt_are_refused(tmp_path):
    G = StyleGAN2Generator(StyleGAN2Config(**TINY))
    g_state = dict(G.state_dict())
    g_state["style.1.weight"] = torch.zeros(1).expand(4000, 4000)  # 64 MB once copied, 4 bytes stored
    torch.save({"g_ema": g_state, "latent_avg": torch.zeros(1).expand(50000)}, tmp_path / "bomb.pt")
    assert (tmp_path / "bomb.pt").stat().st_size < 200_000
    with pytest.raises(CheckpointError, match="declares more elements than it stores") as info:
        convert_checkpoint(tmp_path / "bomb.pt", tmp_path / "out")
    one_line(info)
    assert not (tmp_path / "out").exists()


def test_nvlabs_pickle_with_huge_sizes_is_refused(tmp_path, fake_torch_utils):  # noqa: F811
    reconstruct = fake_torch_utils._reconstruct_persistent_obj
    kwargs = {"z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 16,
              "mapping_kwargs": {"num_layers": 1}, "synthesis_kwargs": {"channel_base": 1 << 20, "channel_max": 8000}}
    G = build_tree({"mapping.fc0.weight": torch.zeros(8, 8), "mapping.fc0.bias": torch.zeros(8)}, "Generator",
                   reconstruct, {"_init_kwargs": kwargs, "img_resolution": 16})
    with open(tmp_path / "wide.pkl", "wb") as f:
        pickle.dump({"G_ema": G}, f)
    with pytest.raises(CheckpointError, match=r"channels\[4\] must be between 1 and 4096, got 8000") as info:
        convert_nvlabs(tmp_path / "wide.pkl")
    one_line(info)
    # views of a one-element storage: refused while unpickling, before anything copies them
    for size, message in [(50000, "declares 2,500,000,000 elements, more than"), (4000, "more elements than its storage")]:
        with open(tmp_path / "view.pkl", "wb") as f:
            pickle.dump({"G_ema": build_tree({"w": torch.zeros(1).expand(size, size)}, "Generator", reconstruct, {})}, f)
        assert (tmp_path / "view.pkl").stat().st_size < 10_000
        with pytest.raises(CheckpointError, match=message) as info:
            load_nvlabs_pickle(tmp_path / "view.pkl")
        one_line(info)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds none (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("case, message", [("8000x8000", "more than 40,000,000"), ("50000x50000", "decompression bomb"),
                                           ("strip", "aspect ratio above 16")])
def test_image_sizes_are_bounded_before_decoding(tmp_path, case, message):
    folder = tmp_path / "data"
    folder.mkdir()
    if case != "strip":
        (folder / "a.png").write_bytes(_png_header_only(*map(int, case.split("x"))))
    else:  # 1 x 60000: scaled to the model size on its short side it becomes millions of pixels wide
        Image.new("RGB", (60000, 1), "white").save(folder / "a.png")
    assert (folder / "a.png").stat().st_size < 10_000
    with pytest.raises(DataError, match=message) as info:
        load_images(folder, 16)
    one_line(info)


# ------------------------------------------------------------------------------------- item 7
class _OtherClass:
    pass


def test_rosinality_checkpoint_with_argparse_args_converts(tmp_path):
    torch.manual_seed(0)
    config = StyleGAN2Config(**TINY, lr_mlp=0.02)
    G, D = StyleGAN2Generator(config), StyleGAN2Discriminator(config)
    g_state = {k: v for k, v in G.state_dict().items() if k != "latent_avg"}
    args = argparse.Namespace(size=16, latent=8, n_mlp=1, lr_mlp=0.02, iter=800, batch=4)  # as CDC/RICK/AdAM save
    torch.save({"g_ema": g_state, "d": D.state_dict(), "latent_avg": torch.zeros(8), "args": args},
               tmp_path / "cdc.pt")
    out = convert_checkpoint(tmp_path / "cdc.pt", tmp_path / "out")
    converted = AutoGenerator.from_pretrained(out)
    assert converted.config.lr_mlp == 0.02  # read from the Namespace
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    G.latent_avg.zero_()
    with torch.no_grad():
        assert torch.equal(converted(z, noise_mode="const"), G(z, noise_mode="const"))
    assert json.loads((out / "lineage.json").read_text())["conversion"]["args"]["iter"] == "800"
    # any other class stays refused, with a clean one-line message (no ANSI escapes from torch's text)
    torch.save({"g_ema": g_state, "args": _OtherClass()}, tmp_path / "custom.pt")
    with pytest.raises(CheckpointError, match="refused for safety") as info:
        convert_checkpoint(tmp_path / "custom.pt", tmp_path / "out2")
    one_line(info)


def test_written_files_follow_the_umask(tmp_path, tiny_dcgan):
    old = os.umask(0o022)
    try:
        tiny_dcgan[0].save_pretrained(tmp_path / "saved", discriminator=tiny_dcgan[1])
        torch.save(tiny_dcgan[0].state_dict(), tmp_path / "g.pt")
        convert_checkpoint(tmp_path / "g.pt", tmp_path / "converted")
    finally:
        os.umask(old)
    for path in [tmp_path / "saved" / "model.safetensors", tmp_path / "saved" / "config.json",
                 tmp_path / "saved" / "discriminator" / "model.safetensors", tmp_path / "converted" / "lineage.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((tmp_path / "converted").stat().st_mode) == 0o755


@pytest.mark.parametrize("field, value", [("nz", "100"), ("ngf", 4.5), ("ndf", float("nan")), ("resolution", True),
                                          ("channels", [8, 4.5])])
def test_config_values_of_the_wrong_type_fail_clearly(tmp_path, tiny_dcgan, field, value):
    folder = tmp_path / "model"
    tiny_dcgan[0].save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=field) as info:
        AutoGenerator.from_pretrained(folder)
    one_line(info)
