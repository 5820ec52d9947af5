"""Our RICK against the official code's output (../shared/fixtures/rick_fisher_32, RICK commit 44d65c1):
per-parameter Fisher, per-filter scores, pooled thresholds and the freeze / fine-tune / prune masks."""
from __future__ import annotations

import pytest
import torch

from fsgen_hub.methods.base import get_method
from fsgen_hub.methods.fisher import adversarial_parameter_fisher, unit_scores
from fsgen_hub.methods.pruning import pooled_percentile_decision

SETTINGS = ["fq50_pq10", "fq40_pq0.1", "fq85_pq0.075"]
# our unit groups -> the fixture's pooled vectors and thresholds
POOLS = {("G", "conv"): "g_conv", ("G", "modulation"): "g_fc", ("D", "conv"): "d_conv"}


@pytest.fixture(scope="module")
def rick(shared_dir):
    from fsgen_hub.models.convert_stylegan2 import convert_rosinality

    folder = shared_dir / "fixtures" / "rick_fisher_32"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    G, D, _ = convert_rosinality(shared_dir / "fixtures" / "rosinality_32" / "checkpoint.pt")
    ref = torch.load(folder / "reference.pt", weights_only=True)
    inputs = ref["inputs"]
    noises = [[layer[j] for layer in inputs["g_noise"]] for j in range(len(inputs["fisher_z"]))]
    fisher_g, fisher_d = adversarial_parameter_fisher(G, D, inputs["fisher_z"], inputs["real_used"], noises)
    # RICK divides the sum over 5 samples by num_fisher_img * batch = 10; we divide by the sample count
    scale = ref["normaliser"] / ref["num_fisher_img"]
    fisher = {"G": {k: v / scale for k, v in fisher_g.items()}, "D": {k: v / scale for k, v in fisher_d.items()}}
    units = {"G": G.fisher_units(), "D": D.fisher_units()}
    scores = {net: unit_scores(fisher[net], units[net]) for net in units}
    return {"G": G, "D": D, "ref": ref, "fisher": fisher, "units": units, "scores": scores, "noises": noises}


def test_forward_passes_match(rick):
    ref, inputs = rick["ref"], rick["ref"]["inputs"]
    with torch.no_grad():
        for j in range(len(inputs["fisher_z"])):
            fake = rick["G"](inputs["fisher_z"][j], noise=rick["noises"][j])
            assert (fake - ref["fake_imgs"][j : j + 1]).abs().max() <= 1e-5
            assert (rick["D"](fake) - ref["fake_pred"][j]).abs().max() <= 1e-5
            assert (rick["D"](inputs["real_used"][j : j + 1]) - ref["real_pred"][j]).abs().max() <= 1e-5


@pytest.mark.parametrize("net", ["G", "D"])
def test_per_parameter_fisher_matches(rick, net):
    reference = rick["ref"]["fisher_g" if net == "G" else "fisher_d"]
    ours = rick["fisher"][net]
    assert set(reference) == set(ours)
    for name, value in reference.items():
        assert (ours[name] - value).abs().max() <= 1e-4 * value.abs().max(), name


def test_per_filter_scores_and_pooled_vectors_match(rick):
    ref = rick["ref"]
    stored = {**ref["score_g_conv"], **ref["score_g_fc"], **ref["score_d_conv"]}
    for net in ("G", "D"):
        for unit, score in zip(rick["units"][net], rick["scores"][net]):
            key = unit.entries[0][0]  # the fixture keys a filter bank by its weight
            torch.testing.assert_close(score, stored[key].double(), rtol=1e-4, atol=0)
    for (net, group), pool in POOLS.items():
        assert [u.entries[0][0] for u in rick["units"][net] if u.group == group] == ref["group_order"][pool]
        pooled = torch.cat([s for s, u in zip(rick["scores"][net], rick["units"][net]) if u.group == group])
        kind, side = pool.split("_")[1], pool.split("_")[0]  # "g_conv" -> grouped_fim_conv_g
        torch.testing.assert_close(pooled, ref[f"grouped_fim_{kind}_{side}"].double(), rtol=1e-4, atol=0)


def _masks_by_key(units, masks):
    """Our per-unit masks keyed as the fixture keys them (every entry of a unit shares the unit's mask)."""
    return {name: mask for unit, mask in zip(units, masks) for name, _ in unit.entries}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("method,options", [
    ("rick", {}),
    ("dap", {"fisher": "ema", "ratio_rule": "global_percentile", "permanent": True, "revive": False,
             "keep_pruned_scores": False, "hold_second_moments": False}),
])
def test_thresholds_and_masks_match_for_rick_and_rick_equivalent_dap(rick, setting, method, options):
    decision = rick["ref"]["decisions"][setting]
    config = {**options, "fisher_quantile": float(decision["fisher_quantile"]), "prune_quantile": float(decision["prune_quantile"])}
    m = get_method(method, config)
    for net in ("G", "D"):
        units, scores = rick["units"][net], rick["scores"][net]
        prune, freeze, thresholds = pooled_percentile_decision(scores, units, m.config.fisher_quantile, m.config.prune_quantile)
        for (pool_net, group), pool in POOLS.items():
            if pool_net == net:
                for line in ("cutline", "pruneline"):
                    assert thresholds[group][line] == pytest.approx(float(decision[f"{line}_{pool}"]), rel=1e-4)
        finetune = [~(p | f) for p, f in zip(prune, freeze)]
        suffix = net.lower()
        for kind, ours in (("freeze", freeze), ("prune", prune), ("ft", finetune)):
            expected = decision[f"{kind}_mask_{suffix}"]
            got = _masks_by_key(units, ours)
            assert set(expected) == set(got), f"{kind} {net}: keys"
            for key, mask in expected.items():
                assert torch.equal(got[key], mask.bool()), f"{setting} {kind} {key}"
