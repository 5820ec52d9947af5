"""GANs already on the hub: HugGAN community DCGANs (PyTorchModelHubMixin, ``model.N`` keys) convert exactly,
from a local file or from a hub repo (tests/hub_server.py)."""
from __future__ import annotations

import json

import pytest
import torch
from hub_server import local_hub
from huggingface_hub import CommitOperationAdd, HfApi, PyTorchModelHubMixin
from torch import nn

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.cli import main as cli_main
from fsgen_hub.models.convert import convert_checkpoint

TOKEN = "hf_TestWriteToken0123456789abcdef"


class HugGANStyleGenerator(nn.Module, PyTorchModelHubMixin):
    """Made-up stand-in with the HugGAN DCGAN key layout: the tutorial's layers in a Sequential named ``model``,
    fed (N, latent_dim, 1, 1) noise; 16 px here instead of 64 to stay tiny."""

    def __init__(self, num_channels: int = 3, latent_dim: int = 8, hidden_size: int = 4):
        super().__init__()
        h = hidden_size
        self.model = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, h * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(h * 2), nn.ReLU(True),
            nn.ConvTranspose2d(h * 2, h, 4, 2, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU(True),
            nn.ConvTranspose2d(h, num_channels, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, noise):
        return self.model(noise)


def make_huggan(num_channels: int = 1) -> HugGANStyleGenerator:
    torch.manual_seed(1)
    G = HugGANStyleGenerator(num_channels=num_channels)
    with torch.no_grad():  # trained-looking batch-norm statistics, so that eval-mode parity means something
        for module in G.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return G.eval()


def assert_same_images(huggan: HugGANStyleGenerator, converted) -> None:
    z = converted.seed_latents([0, 1, 2])
    with torch.no_grad():
        expected = huggan(z.reshape(3, -1, 1, 1))
        got = converted(z)
    assert got.shape == expected.shape and (got - expected).abs().max() <= 1e-6


@pytest.mark.parametrize("weights_file", ["pytorch_model.bin", "model.safetensors"])
def test_huggan_files_convert_exactly(tmp_path, weights_file):
    huggan = make_huggan(num_channels=1)  # MNIST-like
    if weights_file == "pytorch_model.bin":  # what older huggingface_hub mixins wrote
        (tmp_path / "repo").mkdir()
        torch.save(huggan.state_dict(), tmp_path / "repo" / weights_file)
    else:
        huggan.save_pretrained(tmp_path / "repo")  # today's mixin: model.safetensors + config.json
    assert any(k.startswith("model.") for k in huggan.state_dict())
    out = convert_checkpoint(tmp_path / "repo" / weights_file, tmp_path / "out")
    G = AutoGenerator.from_pretrained(out)
    assert (G.config.nz, G.config.nc, G.config.resolution) == (8, 1, 16)
    assert_same_images(huggan, G)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["conversion"]["layout"] == "huggan" and lineage["conversion"]["format"] == "dcgan"
    assert G.sample(seeds=[0])[0].mode == "RGB"  # one-channel models still give RGB images


def test_convert_a_file_of_a_hub_repo(monkeypatch, tmp_path, capsys):
    huggan = make_huggan(num_channels=3)
    with local_hub(monkeypatch, tmp_path / "hf_cache", tokens={TOKEN: "alice"}) as hub:
        huggan.push_to_hub("alice/dcgan-faces", token=TOKEN)  # a HugGAN-style repo, pushed by the mixin itself
        torch.save(huggan.state_dict(), tmp_path / "old.bin")
        api = HfApi(token=TOKEN)
        api.create_commit("alice/dcgan-faces", [CommitOperationAdd("checkpoints/pytorch_model.bin", str(tmp_path / "old.bin"))],
                          commit_message="old format")
        head = hub.history("alice/dcgan-faces")[0].oid

        assert cli_main(["convert", "alice/dcgan-faces/checkpoints/pytorch_model.bin", str(tmp_path / "a")]) == 0
        assert cli_main(["convert", "alice/dcgan-faces", str(tmp_path / "b")]) == 0  # its model.safetensors
        for out in ("a", "b"):
            assert_same_images(huggan, AutoGenerator.from_pretrained(tmp_path / out))
        lineage = json.loads((tmp_path / "a" / "lineage.json").read_text())
        assert lineage["base_model"]["id"] == "alice/dcgan-faces" and lineage["base_model"]["commit"] == head
        assert lineage["conversion"]["source_file"] == "checkpoints/pytorch_model.bin"
        assert "`alice/dcgan-faces`" in (tmp_path / "a" / "README.md").read_text()  # the card names the source repo
        capsys.readouterr()

        assert cli_main(["convert", "alice/dcgan-faces/missing.bin", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "has no missing.bin" in err and err.count("\n") == 1
        assert not (tmp_path / "c").exists()
