"""The Gradio app's handlers on tiny models, and the app driven over real HTTP by gradio_client."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fsgen_hub.demo import ModelCache, VisitorError, compare, generate, interpolate, model_info, slerp
from fsgen_hub.utils.errors import FsgenError


@pytest.fixture
def model_pair(tmp_path, tiny_dcgan):
    """A 'source' folder and an 'adapted' folder whose lineage names the source as the trainer records a local
    one: by name, path relative to the adapted folder and weights digest."""
    import hashlib

    G, D = tiny_dcgan
    source = tmp_path / "source"
    G.save_pretrained(source, discriminator=D)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.05)
    adapted = tmp_path / "adapted"
    digest = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
    lineage = {"kind": "adapted", "base_model": {"id": "source", "local": True, "path": "../source", "sha256": digest},
               "method": {"name": "dap"},
               "data": {"id": "sketches", "shots": 10}, "training": {"steps": 3, "hardware": "cpu"}}
    G.save_pretrained(adapted, lineage=lineage)
    record = {"metric": "swd", "value": 12.5, "protocol": {"num_samples": 100}}
    (adapted / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    return str(source), str(adapted)


def test_generate_count_size_and_determinism(model_pair):
    cache = ModelCache(model_pair, device="cpu")
    images = generate(cache, model_pair[1], 3, 0.7, 5)
    assert len(images) == 5 and images[0].size == (16, 16)
    again = generate(cache, model_pair[1], 3, 0.7, 5)
    assert [im.tobytes() for im in images] == [im.tobytes() for im in again]
    assert cache.loads == 1  # second call was a cache hit


@pytest.mark.parametrize(
    "seed,truncation,num,message",
    [(-1, 1.0, 4, "seed"), (0, 1.5, 4, "truncation"), (0, 1.0, 0, "number of images"),
     (0, 1.0, 99, "number of images"), (0.5, 1.0, 4, "seed"), ("x", 1.0, 4, "seed")],
)
def test_generate_rejects_out_of_range(model_pair, seed, truncation, num, message):
    with pytest.raises(FsgenError, match=message):
        generate(ModelCache(model_pair, device="cpu"), model_pair[1], seed, truncation, num)


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(FsgenError, match="no model folder"):  # listed by the operator: the full error
        generate(ModelCache([str(tmp_path / "nope")], device="cpu"), str(tmp_path / "nope"), 0, 1.0, 1)
    with pytest.raises(VisitorError, match="serves the models in its list only"):  # typed by a visitor
        generate(ModelCache(device="cpu"), str(tmp_path / "nope"), 0, 1.0, 1)


def test_compare_uses_same_latents_for_source_and_adapted(model_pair):
    cache = ModelCache(model_pair, device="cpu")
    source, adapted, note = compare(cache, model_pair[1], 7, 1.0, 4)
    assert len(source) == len(adapted) == 4 and note == "source: source"  # by name, not the server's path
    direct_source = generate(cache, model_pair[0], 7, 1.0, 4)
    assert [im.tobytes() for im in source] == [im.tobytes() for im in direct_source]
    assert source[0].tobytes() != adapted[0].tobytes()
    with pytest.raises(FsgenError, match="records no source"):
        compare(cache, model_pair[0], 0, 1.0, 2)


def test_interpolation_endpoints_are_the_two_seeds(model_pair):
    cache = ModelCache(model_pair, device="cpu")
    strip = interpolate(cache, model_pair[1], 1, 2, 5, 1.0)
    assert len(strip) == 5
    # the ends are the Generate tab's images of seeds 1 and 2, whatever the number of images shown there
    first_of_seed_1 = generate(cache, model_pair[1], 1, 1.0, 3)[0]
    first_of_seed_2 = generate(cache, model_pair[1], 2, 1.0, 1)[0]
    assert strip[0].tobytes() == first_of_seed_1.tobytes() == generate(cache, model_pair[1], 0, 1.0, 2)[1].tobytes()
    got_b = np.asarray(strip[-1], dtype=np.int16)
    assert np.abs(got_b - np.asarray(first_of_seed_2, dtype=np.int16)).max() <= 1  # slerp's end, up to rounding


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(1, 64), torch.randn(1, 64)
    t = torch.tensor([[0.0], [1.0]])
    out = slerp(a.expand(2, -1), b.expand(2, -1), t)
    assert torch.allclose(out[0], a[0], atol=1e-5) and torch.allclose(out[1], b[0], atol=1e-5)


def test_model_info_shows_method_shots_and_metrics(model_pair):
    text = model_info(model_pair[1])
    assert "dap" in text and "10 shots" in text and "swd" in text and "12.5" in text
