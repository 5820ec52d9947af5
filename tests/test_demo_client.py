"""Launch the app on localhost and drive it with gradio_client over real HTTP."""
from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture
def running_app(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    source = tmp_path / "source"
    G.save_pretrained(source)
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(1.1)
    adapted = tmp_path / "adapted"
    import hashlib

    digest = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
    G.save_pretrained(adapted, lineage={"kind": "adapted", "method": {"name": "finetune"},
                                        "base_model": {"id": "source", "local": True, "path": "../source", "sha256": digest}})
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from fsgen_hub.demo import build_app

    demo = build_app([str(adapted)], device="cpu")
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield demo, str(adapted)
    finally:
        demo.close()


def _image_paths(gallery):
    return [item["image"] if isinstance(item["image"], str) else item["image"]["path"] for item in gallery]


def test_generate_compare_interpolate_over_http(running_app):
    from gradio_client import Client
    from PIL import Image

    demo, model = running_app
    client = Client(demo.local_url, verbose=False)
    gallery, grid, info = client.predict(model, 5, 0.8, 3, api_name="/generate")
    paths = _image_paths(gallery)
    assert len(paths) == 3 and all(Image.open(p).size == (16, 16) for p in paths)
    assert Image.open(grid).size == (48, 16) and "finetune" in info

    source, adapted, note = client.predict(model, 5, 1.0, 4, api_name="/compare")
    assert len(_image_paths(source)) == len(_image_paths(adapted)) == 4 and "source" in note

    strip = client.predict(model, 1, 2, 6, 1.0, api_name="/interpolate")
    assert len(_image_paths(strip)) == 6

    # out of range: rejected with a visible message (by the slider's bounds, before our own check)
    with pytest.raises(Exception, match="minimum|number of images"):
        client.predict(model, 5, 0.8, 0, api_name="/generate")
    # a typed path: refused without saying whether it exists (by the picker or by the app's trust model)
    for typed in (model + "-missing", "/etc"):
        with pytest.raises(Exception, match="not in the list of choices|serves the models in its list") as info:
            client.predict(typed, 5, 0.8, 2, api_name="/generate")
        assert "no model folder" not in str(info.value)
