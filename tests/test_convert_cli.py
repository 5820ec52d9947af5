"""`fsgen convert`: formats, detection, and bad inputs leaving no output folder."""
from __future__ import annotations

import pytest
import torch
from helpers import PARITY_ATOL, assert_one_line_error, save_tiny_rosinality_checkpoint, tiny_stylegan2_models
from helpers import fsgen_cli as fsgen

from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.models.convert import convert_checkpoint
from fsgen_hub.utils.errors import CheckpointError


def test_rosinality_checkpoint_through_the_cli(tmp_path, shared_dir):
    fixture = shared_dir / "fixtures" / "rosinality_32"
    result = fsgen("convert", str(fixture / "checkpoint.pt"), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    G, D = AutoGenerator.from_pretrained(tmp_path / "out"), AutoDiscriminator.from_pretrained(tmp_path / "out")
    ref = torch.load(fixture / "reference.pt", weights_only=True)
    with torch.no_grad():
        assert (G(ref["z"], noise=ref["noise"], truncation=0.7) - ref["img_trunc_0.7"]).abs().max() <= PARITY_ATOL
        assert (D(ref["img"]) - ref["d_logits"]).abs().max() <= PARITY_ATOL


def test_tiny_rosinality_checkpoint_converts_exactly_through_the_cli(tmp_path):
    save_tiny_rosinality_checkpoint(tmp_path / "ckpt.pt")
    result = fsgen("convert", tmp_path / "ckpt.pt", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    G, D = tiny_stylegan2_models()
    G2, D2 = AutoGenerator.from_pretrained(tmp_path / "out"), AutoDiscriminator.from_pretrained(tmp_path / "out")
    z, images = torch.randn(2, G.z_dim), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(G.eval()(z, noise_mode="const", truncation=0.7), G2(z, noise_mode="const", truncation=0.7))
        assert torch.equal(D.eval()(images), D2(images))


@pytest.mark.parametrize("wrapped", [True, False])
def test_dcgan_state_dicts_convert_exactly(tmp_path, tiny_dcgan, wrapped):
    G, D = tiny_dcgan
    payload = {"netG_state_dict": G.state_dict(), "netD_state_dict": D.state_dict()} if wrapped else G.state_dict()
    torch.save(payload, tmp_path / "ckpt.pth")
    out = convert_checkpoint(tmp_path / "ckpt.pth", tmp_path / "out")
    G2 = AutoGenerator.from_pretrained(out)
    assert G2.config.resolution == 16 and G2.config.nz == 8 and G2.config.ngf == 4
    assert torch.equal(G.sample(2, output_type="pt"), G2.sample(2, output_type="pt"))
    assert (out / "discriminator").is_dir() == wrapped


@pytest.mark.parametrize(
    "case,args,message",
    [
        ("missing", ["{tmp}/nope.pt", "{tmp}/out"], "does not exist"),
        ("wrong-from", ["{ros}", "{tmp}/out", "--from", "stylegan2-ada"], "not an NVlabs .pkl"),
        ("unknown-from", ["{ros}", "{tmp}/out", "--from", "caffe"], "unknown --from"),
        ("corrupt", ["{tmp}/corrupt.pt", "{tmp}/out"], "not a torch checkpoint|cannot read"),
        ("dcgan-as-rosinality", ["{dcgan}", "{tmp}/out", "--from", "rosinality"], "not a rosinality"),
    ],
)
def test_bad_inputs_are_one_line_errors_without_output(tmp_path, tiny_dcgan, case, args, message):
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage" * 10)
    torch.save(tiny_dcgan[0].state_dict(), tmp_path / "dcgan.pth")
    ros = save_tiny_rosinality_checkpoint(tmp_path / "rosinality.pt")
    argv = [a.format(tmp=tmp_path, ros=ros, dcgan=tmp_path / "dcgan.pth") for a in args]
    assert_one_line_error(fsgen("convert", *argv), message)
    assert not (tmp_path / "out").exists()


def test_failure_keeps_an_existing_output_untouched(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(CheckpointError):
        convert_checkpoint(tmp_path / "bad.pt", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"
