"""Conventions users bring from other tools: metrics on every run, --report-to, --config, --mirror, torch_dtype,
GRADIO_SERVER_* variables."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import save_tiny_dcgan_source, write_random_images
from huggingface_hub import ModelCard

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.cli import main as cli_main
from fsgen_hub.metrics.registry import default_metrics
from fsgen_hub.training.augment import random_xflip
from fsgen_hub.utils.errors import FsgenError


@pytest.fixture
def pair(tmp_path):
    return save_tiny_dcgan_source(tmp_path / "source"), write_random_images(tmp_path / "data", count=4)


def adapt(source, data, out, *extra):
    return cli_main(["adapt", "--source", str(source), "--data", str(data), "--shots", "4", "--method", "finetune",
                     "--steps", "2", "--batch-size", "2", "--save-every", "0", "--sample-every", "0",
                     "--eval-num-samples", "40", "--device", "cpu", "--output-dir", str(out), *extra])


def test_every_adapt_run_is_evaluated_unless_no_eval(pair, tmp_path, capsys):
    source, data = pair
    assert adapt(source, data, tmp_path / "evaluated") == 0
    records = [json.loads(line) for line in (tmp_path / "evaluated" / "metrics.jsonl").read_text().splitlines()]
    assert {r["model"] for r in records} == {"evaluated"}  # the adapted run, not the source it was copied from
    assert [r["metric"] for r in records] == ["swd", "msssim_diversity", "memorization"]
    assert all(r["protocol"]["num_samples"] == 40 and r["step"] == 2 for r in records)
    card = ModelCard.load(tmp_path / "evaluated" / "README.md")
    assert {r.metric_type for r in card.data.eval_results} == {"swd", "msssim_diversity", "memorization"}
    assert (tmp_path / "evaluated" / "logs" / "tensorboard").is_dir()  # --report-to tensorboard is the default
    assert "swd:" in capsys.readouterr().out

    assert adapt(source, data, tmp_path / "quiet", "--no-eval", "--report-to", "none") == 0
    assert not (tmp_path / "quiet" / "metrics.jsonl").exists()
    assert ModelCard.load(tmp_path / "quiet" / "README.md").data.eval_results is None
    assert not (tmp_path / "quiet" / "logs" / "tensorboard").exists()

    # --config replays the recorded arguments; flags on the command line win; the output folder is new
    assert cli_main(["adapt", "--config", str(tmp_path / "evaluated"), "--steps", "3",
                     "--output-dir", str(tmp_path / "replay")]) == 0
    first = json.loads((tmp_path / "evaluated" / "logs" / "run_args.json").read_text())
    replay = json.loads((tmp_path / "replay" / "logs" / "run_args.json").read_text())
    assert replay["steps"] == 3 and replay["output_dir"] == str(tmp_path / "replay")
    assert {k: v for k, v in replay.items() if k not in ("steps", "output_dir")} == \
        {k: v for k, v in first.items() if k not in ("steps", "output_dir")}


def test_config_files_yaml_and_errors(pair, tmp_path, capsys):
    source, data = pair
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"source": str(source), "data": str(data), "shots": 4, "method": "finetune",
                                      "steps": 1, "batch_size": 2, "save_every": 0, "sample_every": 0,
                                      "device": "cpu", "no_eval": True, "report_to": "none", "mirror": True}))
    assert cli_main(["adapt", "--config", str(config), "--output-dir", str(tmp_path / "from-yaml")]) == 0
    args = json.loads((tmp_path / "from-yaml" / "logs" / "run_args.json").read_text())
    assert args["mirror"] is True and args["steps"] == 1 and args["no_eval"] is True
    capsys.readouterr()
    (tmp_path / "bad.yaml").write_text("steps: 2\nlearning_rate: 3\n")
    for bad in (tmp_path / "bad.yaml", tmp_path / "missing.json"):
        assert cli_main(["adapt", "--config", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --config") and err.count("\n") == 1
    assert cli_main(["adapt", "--report-to", "comet", "--data", str(data)]) == 2
    assert "--report-to must be one of" in capsys.readouterr().err


def test_default_metrics_add_those_whose_weights_are_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no weights in torch's cache either
    monkeypatch.delenv("FSGEN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("FSGEN_LPIPS_BACKBONE", raising=False)
    assert default_metrics() == ["swd", "msssim_diversity", "memorization"]
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"stand-in")
    monkeypatch.setenv("FSGEN_INCEPTION_WEIGHTS", str(weights))
    assert default_metrics() == ["swd", "msssim_diversity", "memorization", "fid5k", "kid5k"]
    backbone = tmp_path / "vgg16-397923af.pth"
    backbone.write_bytes(b"stand-in")
    monkeypatch.setenv("FSGEN_LPIPS_BACKBONE", str(backbone))
    assert default_metrics()[-3:] == ["fid5k", "intra_lpips1k", "kid5k"]


def test_mirror_flips_whole_images_about_half_the_time():
    torch.manual_seed(0)
    x = torch.rand(400, 3, 4, 5)
    y = random_xflip(x)
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 150 < int(mirrored.sum()) < 250


def test_torch_dtype_on_from_pretrained(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    half = AutoGenerator.from_pretrained(tmp_path / "m", torch_dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    reference = G.sample(seeds=[0, 1], output_type="pt")
    assert (half.sample(seeds=[0, 1], output_type="pt") - reference).abs().max() < 0.05
    assert AutoGenerator.from_pretrained(tmp_path / "m", torch_dtype="float32").sample(seeds=[0, 1], output_type="pt") \
        .equal(reference)
    with pytest.raises(FsgenError, match="not a floating-point torch dtype"):
        AutoGenerator.from_pretrained(tmp_path / "m", torch_dtype="int8")


def test_fsgen_demo_lets_gradio_read_its_environment(monkeypatch):
    import fsgen_hub.demo

    launched = {}

    class FakeApp:
        def launch(self, **kwargs):
            launched.update(kwargs)

    monkeypatch.setattr(fsgen_hub.demo, "build_app", lambda *a, **k: FakeApp())
    assert cli_main(["demo", "some/model"]) == 0
    # None: gradio then uses GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as its docs promise
    assert launched["server_name"] is None and launched["server_port"] is None
    assert cli_main(["demo", "--host", "0.0.0.0", "--port", "7000"]) == 0
    assert launched["server_name"] == "0.0.0.0" and launched["server_port"] == 7000
