"""The demo's trust model (issue 16 item 4): what a stranger typing into the app can and cannot reach."""
from __future__ import annotations

import json
import threading
import time

import pytest
import torch
from hub_server import local_hub
from huggingface_hub import HfApi

from fsgen_hub.demo import GENERIC_ERROR, ModelCache, VisitorError, compare, generate, model_info, save_grid
from fsgen_hub.utils.errors import FsgenError

TOKEN = "hf_DemoOwnerToken0123456789abcdef"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with local_hub(monkeypatch, tmp_path / "hf_cache", tokens={TOKEN: "alice"}) as server:
        yield server


def upload(folder, repo_id, private=False):
    api = HfApi(token=TOKEN)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder))


def test_typed_local_paths_are_never_opened(tmp_path, tiny_dcgan, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # a typed namespace/name goes to the hub, never to disk
    listed, other = tmp_path / "listed", tmp_path / "private_runs" / "secret"
    tiny_dcgan[0].save_pretrained(listed)
    tiny_dcgan[0].save_pretrained(other)
    monkeypatch.chdir(tmp_path)
    strict = ModelCache([str(listed)], device="cpu")
    custom = ModelCache([str(listed)], allow_custom=True, device="cpu")
    for cache in (strict, custom):
        answers = []
        for typed in (str(other), str(tmp_path / "private_runs" / "missing"), "private_runs/secret",
                      "private_runs/missing", "../x", "~/x"):
            with pytest.raises(FsgenError) as info:
                cache.get(typed)
            # the same answer whether the path exists or not: nothing about the server's files leaks
            answers.append(str(info.value).replace(typed, "<typed>"))
            assert str(tmp_path) not in str(info.value).replace(typed, "") and cache.loads == 0
            assert "architecture" not in model_info(typed, cache)
        assert answers[0] == answers[1] and answers[2] == answers[3], answers
    assert generate(strict, str(listed), 0, 1.0, 1)  # the listed model works


def test_typed_hub_ids_get_no_token_and_bounded_sizes(hub, tmp_path, tiny_dcgan, monkeypatch):
    G = tiny_dcgan[0]
    G.save_pretrained(tmp_path / "public")
    G.save_pretrained(tmp_path / "private")
    upload(tmp_path / "public", "alice/public")
    upload(tmp_path / "private", "alice/private", private=True)
    bomb = tmp_path / "bomb"
    G.save_pretrained(bomb)
    config = json.loads((bomb / "config.json").read_text())
    (bomb / "config.json").write_text(json.dumps({**config, "ngf": 4000, "resolution": 256}))
    upload(bomb, "alice/bomb")
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the Space's own token, which may read alice's private repos
    listed = ModelCache(["alice/private"], device="cpu")
    assert generate(listed, "alice/private", 0, 1.0, 1)  # the owner listed it: the ambient token may be used
    cache = ModelCache([], allow_custom=True, device="cpu")
    assert generate(cache, "alice/public", 0, 1.0, 1)
    with pytest.raises(VisitorError, match="private repos are not served"):
        cache.get("alice/private")
    with pytest.raises(FsgenError, match="more than 4096"):  # refused from config.json, before allocating
        cache.get("alice/bomb")
    assert cache.loads == 1
    with pytest.raises(VisitorError):  # without allow_custom, a typed hub id is not served at all
        ModelCache([], device="cpu").get("alice/public")


def test_visitors_see_generic_errors(tmp_path, tiny_dcgan):
    pytest.importorskip("gradio")
    from fsgen_hub import demo as demo_module

    folder = tmp_path / "srv" / "models" / "broken"
    tiny_dcgan[0].save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 16)  # corrupt weights on the server
    app = demo_module.build_app([str(folder)], device="cpu")
    fn = next(f.fn for f in app.fns.values() if getattr(f, "api_name", None) == "generate")
    with pytest.raises(Exception) as info:
        fn(str(folder), 0, 1.0, 1)
    assert str(info.value) == GENERIC_ERROR or GENERIC_ERROR in repr(info.value)
    assert str(tmp_path) not in repr(info.value)
    with pytest.raises(Exception) as info:
        fn(str(folder), -1, 1.0, 1)  # input errors are the visitor's own: shown as they are
    assert "seed must be" in repr(info.value)


def test_broken_lineage_and_metrics_do_not_break_the_panel_or_the_app(tmp_path, tiny_dcgan):
    pytest.importorskip("gradio")
    from fsgen_hub.demo import build_app

    folder = tmp_path / "model"
    tiny_dcgan[0].save_pretrained(folder, lineage={"kind": "adapted", "method": {"name": "dap"}})
    (folder / "lineage.json").write_text('{"method": ["not", "a dict"], "data": 3, "training": {"steps": ')
    (folder / "metrics.jsonl").write_text('{"metric": "swd", "value": 12.5}\nnot json\n[1, 2]\n'
                                          '{"metric": "kid", "value": "high"}\n{"metric": null}\n')
    text = model_info(str(folder), ModelCache([str(folder)]))
    assert "dcgan" in text and "swd" in text and "12.5" in text and "kid" not in text
    app = build_app([str(folder)], device="cpu")  # the first page renders its info panel at start
    assert app.fsgen_cache.models[0] == str(folder)


def test_concurrent_requests_load_a_model_once(tmp_path, tiny_dcgan, monkeypatch):
    from fsgen_hub.auto import AutoGenerator

    tiny_dcgan[0].save_pretrained(tmp_path / "m")
    cache = ModelCache([str(tmp_path / "m")], device="cpu")
    real, calls = AutoGenerator.from_pretrained, []

    def slow_load(*args, **kwargs):
        calls.append(args)
        time.sleep(0.3)  # a real model takes seconds: every request arriving meanwhile must wait for this load
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoGenerator, "from_pretrained", slow_load)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(str(tmp_path / "m")))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and cache.loads == 1 and len({id(m) for m in results}) == 1 and len(results) == 6


def test_grid_files_are_cleaned_up(tmp_path, tiny_dcgan):
    images = tiny_dcgan[0].sample(2, seed=0)
    for _ in range(7):
        save_grid(images, directory=tmp_path, keep=3)
    assert len(list(tmp_path.glob("fsgen_*.png"))) == 3


def test_compare_follows_only_a_verified_local_source(tmp_path, tiny_dcgan):
    import hashlib

    G = tiny_dcgan[0]
    G.save_pretrained(tmp_path / "source")
    digest = hashlib.sha256((tmp_path / "source" / "model.safetensors").read_bytes()).hexdigest()
    base = {"id": "source", "local": True, "path": "../source", "sha256": digest}
    G.save_pretrained(tmp_path / "adapted", lineage={"kind": "adapted", "base_model": base})
    cache = ModelCache([str(tmp_path / "adapted")], device="cpu")
    source, adapted, note = compare(cache, str(tmp_path / "adapted"), 0, 1.0, 2)
    assert note == "source: source" and [a.tobytes() for a in source] == [a.tobytes() for a in adapted]
    with torch.no_grad():
        G.main[0].weight.add_(1.0)
    G.save_pretrained(tmp_path / "source")  # another model now sits at that path: not the recorded source
    fresh = ModelCache([str(tmp_path / "adapted")], device="cpu")
    with pytest.raises(VisitorError, match="not available here"):
        compare(fresh, str(tmp_path / "adapted"), 0, 1.0, 2)
    # a listed (or zoo, or hub) source is compared only while it holds the weights the lineage records
    listed = {"id": str(tmp_path / "source"), "sha256": digest}  # the digest of the weights before the change above
    G.save_pretrained(tmp_path / "adapted3", lineage={"kind": "adapted", "base_model": listed})
    both = ModelCache([str(tmp_path / "source"), str(tmp_path / "adapted3")], device="cpu")
    with pytest.raises(VisitorError, match="now holds other weights than it was adapted from"):
        compare(both, str(tmp_path / "adapted3"), 0, 1.0, 2)
    now = hashlib.sha256((tmp_path / "source" / "model.safetensors").read_bytes()).hexdigest()
    G.save_pretrained(tmp_path / "adapted3", lineage={"kind": "adapted", "base_model": {**listed, "sha256": now}})
    both = ModelCache([str(tmp_path / "source"), str(tmp_path / "adapted3")], device="cpu")
    source, adapted, _ = compare(both, str(tmp_path / "adapted3"), 0, 1.0, 2)  # the same weights: the same images
    assert len(source) == 2 and [a.tobytes() for a in source] == [a.tobytes() for a in adapted]
    # an absolute path in a lineage (as older fsgen_hub wrote, or as a stranger's file may say) is not followed
    G.save_pretrained(tmp_path / "adapted2", lineage={"kind": "adapted", "base_model": {"id": str(tmp_path / "source")}})
    with pytest.raises(VisitorError, match="not available here"):
        compare(ModelCache([str(tmp_path / "adapted2")], device="cpu"), str(tmp_path / "adapted2"), 0, 1.0, 2)
