"""RICK's and DAP's behaviour in training (tiny DCGAN): what trains, the warm-up, masks under Adam, the
schedule, and DAP's per-layer rule and ablation switches. Their numbers against RICK's official code are
in test_rick_parity.py."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import write_random_images

from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.methods.pruning import cumulative_share_decision, pooled_percentile_decision
from fsgen_hub.models.base import FisherUnit
from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import AdaptationTrainer


@pytest.fixture
def setup(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    G.save_pretrained(tmp_path / "src", discriminator=D)
    write_random_images(tmp_path / "data")
    return tmp_path


def run(tmp, name, method, options, steps=12, **training):
    training = {"warmup_steps": 2, **training}
    args = TrainingArguments(source=str(tmp / "src"), data=str(tmp / "data"), shots=4, method=method, method_options=options,
                             steps=steps, output_dir=str(tmp / name), save_every=0, sample_every=0, device="cpu",
                             seed=1, **training)
    trainer = AdaptationTrainer(args)
    out = trainer.train()
    return trainer.method, out


def held_slices(method):
    for key, masks in method.masks.items():
        for unit in masks.units:
            for which in ("pruned", "frozen"):
                mask = getattr(masks, which)[unit.name]
                for name, tensor, sel in masks._slices(unit, mask):
                    yield key, which, name, tensor.detach(), sel


def test_rick_recipe_trains_only_synthesis_and_d_blocks_and_warms_up_d_final_only(setup):
    source_G, source_D = AutoGenerator.from_pretrained(setup / "src"), AutoDiscriminator.from_pretrained(setup / "src")
    method, out = run(setup, "warm", "rick", {"interval": 100}, steps=3, warmup_steps=2)
    args = json.loads((out / "logs" / "run_args.json").read_text())
    assert args["batch_size"] == 2 and args["g_groups"] == "synthesis" and args["d_groups"] == "blocks,final"
    assert args["augment"] == "none" and args["ema_half_life"] == pytest.approx(312.5 * 3 / 1000)  # fitted to 3 steps
    assert args["pl_weight"] == 0 and args["style_mixing"] == 0  # a DCGAN has no style space
    G, D = AutoGenerator.from_pretrained(out), AutoDiscriminator.from_pretrained(out)
    g_groups, d_groups = source_G.parameter_groups(), source_D.parameter_groups()
    g_src, g_new = source_G.state_dict(), G.state_dict()
    for group in ("conv1", "torgb"):
        assert all(torch.equal(g_src[n], g_new[n]) for n in g_groups[group]), group
    assert any(not torch.equal(g_src[n], g_new[n]) for n in g_groups["synthesis"])
    d_src, d_new = source_D.state_dict(), D.state_dict()
    assert all(torch.equal(d_src[n], d_new[n]) for n in d_groups["from_rgb"])
    assert any(not torch.equal(d_src[n], d_new[n]) for n in d_groups["blocks"])


def test_warm_up_moves_only_the_final_d_layers_and_not_g(setup, monkeypatch):
    from fsgen_hub.methods.finetune import Finetune

    source_G, source_D = AutoGenerator.from_pretrained(setup / "src"), AutoDiscriminator.from_pretrained(setup / "src")
    seen = {}

    def on_step_end(self, ctx, step):
        # parameters (a DCGAN's BatchNorm running statistics move whenever G runs in training mode)
        seen[step] = ({k: v.detach().clone() for k, v in ctx.G.named_parameters()},
                      {k: v.detach().clone() for k, v in ctx.D.named_parameters()})

    monkeypatch.setattr(Finetune, "on_step_end", on_step_end)
    run(setup, "warm2", "finetune", {}, steps=3, warmup_steps=2, augment="none")
    d_groups = source_D.parameter_groups()
    d_src, g_src = source_D.state_dict(), dict(source_G.named_parameters())
    g_warm, d_warm = seen[1]                                    # end of the 2-step warm-up
    assert all(torch.equal(g_src[n], g_warm[n]) for n in g_src)
    assert all(torch.equal(d_src[n], d_warm[n]) for n in d_groups["from_rgb"] + d_groups["blocks"])
    assert all(not torch.equal(d_src[n], d_warm[n]) for n in d_groups["final"])
    g_after, d_after = seen[2]                                  # the first full step moves G and D's blocks
    assert any(not torch.equal(g_src[n], g_after[n]) for n in g_src)
    assert any(not torch.equal(d_src[n], d_after[n]) for n in d_groups["blocks"])


def test_rick_pruned_filters_of_g_and_d_stay_zero_under_adam_momentum_and_in_the_export(setup):
    options = {"interval": 4, "fisher_samples": 3, "fisher_quantile": 60, "prune_quantile": 20}
    method, out = run(setup, "rick", "rick", options, steps=13, beta1=0.9, lazy_regularization=False)
    assert [h["step"] for h in method.history] == [2, 6, 10]  # after warm-up, then every 4 steps
    pruned = {"G": False, "D": False}
    frozen = {"G": False, "D": False}
    for key, which, name, tensor, sel in held_slices(method):
        if not sel.any():
            continue
        if which == "pruned":
            pruned[key] = True
            assert torch.count_nonzero(tensor[sel]) == 0, name
    assert all(pruned.values())
    ratios = [h["ratios"] for h in method.history]
    assert all(b >= a for earlier, later in zip(ratios, ratios[1:]) for a, b in zip(earlier, later))  # union
    exported = AutoGenerator.from_pretrained(out).state_dict()
    for key, which, name, _tensor, sel in held_slices(method):
        if key == "G" and which == "pruned" and sel.any():
            assert torch.count_nonzero(exported[name][sel.cpu()]) == 0, name
        if which == "frozen" and sel.any():
            frozen[key] = True
    assert all(frozen.values())
    assert (out / "pruning.png").is_file() and json.loads((out / "pruning.json").read_text())["decisions"]


def test_frozen_filters_do_not_move_between_decisions(setup, monkeypatch):
    from fsgen_hub.methods.pruning import FilterPruningMethod

    snapshots = {}
    original = FilterPruningMethod.decide

    def decide(self, ctx, step):
        original(self, ctx, step)
        snapshots.clear()
        for key, which, name, tensor, sel in held_slices(self):
            if which == "frozen" and sel.any():
                snapshots[(key, name)] = (tensor[sel].clone(), sel.clone())

    monkeypatch.setattr(FilterPruningMethod, "decide", decide)
    method, _ = run(setup, "frozen", "rick", {"interval": 100, "fisher_samples": 2, "fisher_quantile": 50}, steps=8,
                    beta1=0.9, lazy_regularization=False)
    assert snapshots
    params = {"G": dict(method.masks["G"].model.named_parameters()), "D": dict(method.masks["D"].model.named_parameters())}
    for (key, name), (values, sel) in snapshots.items():
        assert torch.equal(params[key][name].detach()[sel], values), name


def test_pooled_percentile_rule_pools_by_group_and_is_strict_for_strict_units():
    units = [FisherUnit("a", "conv", []), FisherUnit("b", "conv", [], strict_prune=True), FisherUnit("c", "other", [])]
    scores = [torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]), torch.tensor([100.0, 200.0])]
    prune, freeze, thresholds = pooled_percentile_decision(scores, units, fisher_quantile=50, prune_quantile=0)
    assert thresholds["conv"] == {"cutline": 1.5, "pruneline": 1.0} and thresholds["other"]["cutline"] == 150
    assert prune[0].tolist() == [True, False] and prune[1].tolist() == [False, False]  # "<" for strict units
    assert freeze[0].tolist() == [False, True] and freeze[2].tolist() == [False, True]


def test_dap_keeps_a_uniformly_weak_low_level_layer_that_a_global_threshold_wipes_out():
    low_level = torch.full((8,), 0.01)                          # every filter matters a little
    high_level = torch.tensor([5.0, 4.0, 0.02, 0.01, 0.015, 0.012, 0.011, 0.013])  # dominated by two filters
    importance = [low_level, high_level]
    units = [FisherUnit("low", "conv", []), FisherUnit("high", "conv", [])]
    rick_prune, _, _ = pooled_percentile_decision(importance, units, fisher_quantile=90, prune_quantile=50)
    assert rick_prune[0].all()                                  # the pooled threshold removes the whole layer
    dap_prune, _, ratios = cumulative_share_decision(importance, tau=0.05, max_layer_ratio=0.75, freeze_share=0, budget=None)
    assert ratios[0] == 0.0 and ratios[1] == 0.75               # DAP: ratio decided per layer
    assert set(torch.nonzero(dap_prune[1]).flatten().tolist()) == {2, 3, 4, 5, 6, 7}


def test_dap_budget_and_freeze_share():
    importance = [torch.tensor([1.0, 1.0, 0.001, 0.001]), torch.tensor([3.0, 0.002, 0.003, 0.004])]
    prune, freeze, _ = cumulative_share_decision(importance, tau=0.05, max_layer_ratio=1.0, freeze_share=0.5, budget=0.25)
    assert sum(int(m.sum()) for m in prune) == 2                 # 25% of 8 filters
    assert freeze[1].tolist() == [True, False, False, False]     # one filter holds > half of layer 1
    assert not (prune[0] & freeze[0]).any()


def test_dap_defaults_freeze_and_prune_little_and_re_decide(setup):
    method, out = run(setup, "dap", "dap", {"interval": 3}, steps=10)
    assert [h["step"] for h in method.history] == [2, 5, 8]
    final = json.loads((out / "pruning.json").read_text())
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["method"]["name"] == "dap" and lineage["artifacts"]["pruning_plot"] == "pruning.png"
    g_frozen = [v["frozen"] for v in final["final"].values()]
    assert any(f > 0 for f in g_frozen)                         # preservation on by default
    for _key, which, name, tensor, sel in held_slices(method):
        if which == "pruned" and sel.any():
            assert torch.count_nonzero(tensor[sel]) == 0, name


@pytest.mark.parametrize("options,check", [
    ({"dynamic": False}, lambda m: len(m.history) == 1),
    ({"freeze_share": 0.0}, lambda m: all(not f.any() for masks in m.masks.values() for f in masks.frozen.values())),
])
def test_dap_ablation_switches(setup, options, check):
    method, _ = run(setup, "abl", "dap", {"interval": 3, **options}, steps=10)
    assert check(method)


def test_dap_revives_a_filter_with_its_values_from_pruning_time(tiny_dcgan):
    from fsgen_hub.methods.pruning import UnitMasks

    G, _ = tiny_dcgan
    unit = G.fisher_units()[0]
    masks = UnitMasks(G, [unit])
    weight = dict(G.named_parameters())[unit.entries[0][0]]
    before = weight.detach().clone()
    n = weight.shape[unit.entries[0][1]]
    first = torch.zeros(n, dtype=torch.bool)
    first[0] = True
    masks.update([first], [torch.zeros(n, dtype=torch.bool)], permanent=False, revive=True)
    assert torch.count_nonzero(weight.detach()[:, 0]) == 0
    masks.update([torch.zeros(n, dtype=torch.bool)], [torch.zeros(n, dtype=torch.bool)], permanent=False, revive=True)
    assert torch.equal(weight.detach(), before)                 # revived exactly
    masks.update([first], [torch.zeros(n, dtype=torch.bool)], permanent=False, revive=False)
    masks.update([torch.zeros(n, dtype=torch.bool)], [torch.zeros(n, dtype=torch.bool)], permanent=False, revive=False)
    assert torch.count_nonzero(weight.detach()[:, 0]) == 0      # revive=false: released but left at zero


def test_dap_first_decision_uses_ema_passes_then_the_continuous_estimate(setup, monkeypatch):
    import fsgen_hub.methods.pruning as pruning

    calls = []
    original = pruning.adversarial_parameter_fisher

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pruning, "adversarial_parameter_fisher", counting)
    method, _ = run(setup, "first", "dap", {"interval": 3}, steps=9)
    assert len(method.history) == 3 and len(calls) == 1          # only the decision at the end of the warm-up
    assert all(f.count > 0 for f in method.fisher.values())
