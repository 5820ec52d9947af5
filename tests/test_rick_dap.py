"""RICK invariants, the RICK-equivalent DAP configuration, and DAP's per-layer ratios."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import run as adapt
from helpers import write_random_images

from fsgen_hub.methods.pruning import cumulative_share_decision, global_percentile_decision


@pytest.fixture
def setup(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    G.save_pretrained(tmp_path / "src", discriminator=D)
    write_random_images(tmp_path / "data")
    return tmp_path


def run(tmp, name, method, options, steps=12, beta1=0.9):
    trainer, out = adapt(tmp / "src", tmp / "data", tmp / name, method, options, steps=steps, beta1=beta1)
    return trainer.method, out


def layer_slices(method):
    for layer in method.masks.layers():
        for key, tensor, axis, mask in method.masks._entries(layer, "pruned"):
            yield "pruned", key, tensor, axis, mask
        for key, tensor, axis, mask in method.masks._entries(layer, "frozen"):
            yield "frozen", key, tensor, axis, mask


def test_rick_pruned_stay_zero_and_frozen_unchanged_under_adam_momentum(setup):
    options = {"interval": 4, "warmup_steps": 2, "fisher_samples": 3, "low_percentile": 20, "high_percentile": 60}
    method, out = run(setup, "rick", "rick", options, steps=13)
    assert [h["step"] for h in method.history] == [2, 6, 10]  # after warm-up, then every 4 steps
    pruned_any = frozen_any = False
    for kind, key, tensor, axis, mask in layer_slices(method):
        if not mask.any():
            continue
        selected = tensor.detach().transpose(0, axis)[mask]
        if kind == "pruned":
            pruned_any = True
            assert torch.count_nonzero(selected) == 0, key
        else:
            frozen_any = True
            snapshot = method.masks.frozen_values[key].transpose(0, axis)[mask]
            assert torch.equal(selected.cpu(), snapshot), key
    assert pruned_any and frozen_any
    # the exported model carries the zeros too, and pruning is permanent (ratios never decrease)
    ratios = [h["ratios"] for h in method.history]
    assert all(b >= a for earlier, later in zip(ratios, ratios[1:]) for a, b in zip(earlier, later))
    assert (out / "pruning.png").is_file() and json.loads((out / "pruning.json").read_text())["decisions"]


def test_rick_equivalent_dap_takes_rick_decisions(setup):
    shared = {"interval": 4, "warmup_steps": 2, "fisher_samples": 3, "low_percentile": 20, "high_percentile": 60}
    rick, _ = run(setup, "r", "rick", shared, steps=11)
    dap, _ = run(setup, "d", "dap", {**shared, "fisher": "on_demand", "ratio_rule": "global_percentile",
                                     "permanent": True, "revive": False})
    for name in rick.masks.names:
        assert torch.equal(rick.masks.pruned[name], dap.masks.pruned[name])
        assert torch.equal(rick.masks.frozen[name], dap.masks.frozen[name])
    assert any(m.any() for m in rick.masks.pruned.values())


def test_dap_keeps_a_uniformly_weak_low_level_layer_that_a_global_threshold_wipes_out():
    low_level = torch.full((8,), 0.01)                          # every filter matters a little
    high_level = torch.tensor([5.0, 4.0, 0.02, 0.01, 0.015, 0.012, 0.011, 0.013])  # dominated by two filters
    importance = [low_level, high_level]
    rick_prune, _ = global_percentile_decision(importance, low=50, high=90)
    assert rick_prune[0].all()                                  # the fixed threshold removes the whole layer
    dap_prune, _, ratios = cumulative_share_decision(importance, tau=0.05, max_layer_ratio=0.75, freeze_share=0, budget=None)
    assert ratios[0] == 0.0 and ratios[1] == 0.75               # DAP: ratio decided per layer
    assert set(torch.nonzero(dap_prune[1]).flatten().tolist()) == {2, 3, 4, 5, 6, 7}


def test_dap_budget_and_freeze_share():
    importance = [torch.tensor([1.0, 1.0, 0.001, 0.001]), torch.tensor([3.0, 0.002, 0.003, 0.004])]
    prune, freeze, _ = cumulative_share_decision(importance, tau=0.05, max_layer_ratio=1.0, freeze_share=0.5, budget=0.25)
    assert sum(int(m.sum()) for m in prune) == 2                 # 25% of 8 filters
    assert freeze[1].tolist() == [True, False, False, False]     # one filter holds > half of layer 1
    assert not (prune[0] & freeze[0]).any()


def test_dap_runs_and_records_history(setup):  # forced revival: test_pruning_masks.py
    method, out = run(setup, "dap", "dap", {"interval": 3, "tau": 0.2, "max_layer_ratio": 0.5}, steps=10, beta1=0.0)
    assert len(method.history) == 3
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["method"]["name"] == "dap" and lineage["artifacts"]["pruning_plot"] == "pruning.png"
    for kind, _key, tensor, axis, mask in layer_slices(method):
        if kind == "pruned" and mask.any():
            assert torch.count_nonzero(tensor.detach().transpose(0, axis)[mask]) == 0
