"""DAP/RICK masks, one mechanism at a time: resume, revival, permanence, Adam first moments and gradients of held
filters, frozen values, the freeze/prune thresholds at a tie, the EMA generator and the exported folder.

Every run passes its method options and warm-up explicitly (never relying on a method's defaults), and the
expected values are taken independently of the library's bookkeeping: deep copies of the models' tensors
made at decision time, not ``UnitMasks.pruned_values``.
"""
from __future__ import annotations

import copy
import shutil

import pytest
import torch
from helpers import run, save_tiny_dcgan_source, save_tiny_stylegan2_source, tiny_stylegan2_models, write_random_images

from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.methods.dap import DAP, DAPConfig
from fsgen_hub.methods.pruning import UnitMasks, pooled_percentile_decision, unit_size
from fsgen_hub.methods.rick import RICK, RICKConfig
from fsgen_hub.models.base import FisherUnit

# a generator Fisher unit of each tiny model whose importance the revival tests script
SCRIPTED_UNIT = {"stylegan2": "convs.1.conv.weight", "dcgan": "main.3.weight"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pruning")
    save_tiny_dcgan_source(tmp / "dcgan")
    save_tiny_stylegan2_source(tmp / "stylegan2")
    write_random_images(tmp / "data")
    return tmp


# ----------------------------------------------------------------------------- independent views of a model
def entries(model, masks: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor] | None = None):
    """(key, tensor, axis, mask) for the selected filters of every Fisher unit of ``model`` (``masks``: unit
    name -> bool per filter); ``tensors`` replaces the model's parameters (e.g. Adam moments laid out alike)."""
    tensors = tensors if tensors is not None else dict(model.named_parameters())
    for unit in model.fisher_units():
        mask = masks.get(unit.name)
        if mask is not None and mask.any():
            for name, axis in unit.entries:
                yield f"{unit.name}>{name}", tensors[name], axis, mask.to(tensors[name].device)


def slices(model, masks, tensors=None) -> dict[str, torch.Tensor]:
    return {key: t.detach().transpose(0, axis)[mask].clone() for key, t, axis, mask in entries(model, masks, tensors)}


def first_moment_slices(model, optimizer, masks) -> dict[str, torch.Tensor]:
    """Adam's first moment (``exp_avg``) at the selected entries. Held entries must have it at zero: that is what
    makes Adam's update of a frozen filter exactly zero. The second moment is deliberately left to decay, as in
    RICK (pruning.py: zeroing it would make the first step after a release about 1/sqrt(1-beta2) times lr)."""
    optimizer = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
    out = {}
    for moment in ("exp_avg",):
        tensors = {n: optimizer.state.get(p, {}).get(moment, torch.zeros_like(p)) for n, p in model.named_parameters()}
        out.update({f"{moment}:{k}": v for k, v in slices(model, masks, tensors).items()})
    return out


def state_of(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def all_zero(values: dict[str, torch.Tensor]) -> bool:
    return all(torch.count_nonzero(v) == 0 for v in values.values())


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def held(masks: UnitMasks) -> dict[str, torch.Tensor]:
    return {n: masks.pruned[n] | masks.frozen[n] for n in masks.names}


def only(model, unit_name, *indices) -> dict[str, torch.Tensor]:
    unit = next(u for u in model.fisher_units() if u.name == unit_name)
    mask = torch.zeros(unit_size(model, unit), dtype=torch.bool)
    mask[list(indices)] = True
    return {unit_name: mask}


def as_model(model, state):
    copied = copy.deepcopy(model)
    copied.load_state_dict(state)
    return copied


# ----------------------------------------------------------------------------- a method that records what it sees
class Recorder:
    """Mixed into DAP/RICK: optionally scripts the generator's importance at each decision, and records the
    models around each decision, the Adam moments of held (pruned or frozen) entries when the next decision
    comes, steps at which a frozen entry left its decision-time value, and whether the EMA generator is masked."""

    def __init__(self, config, scripted=None):
        super().__init__(config)
        self.scripted = scripted          # scripted(decision_index, G, units) -> importance per G unit
        self.before, self.after = [], []  # {"G": state, "D": state} just before / after each decision
        self.moments_of_held = []         # per decision: Adam first moments of the entries held since the previous one
        self.frozen_copy = None           # per network: frozen entries as the latest decision left them
        self.frozen_drift = []            # (step, network) where a frozen entry differed from frozen_copy
        self.ema_unmasked = []            # steps at which a pruned entry of the EMA generator was not zero

    def prepare(self, ctx):
        super().prepare(ctx)
        self.ctx = ctx

    def importance(self, ctx):
        if self.scripted is None:
            return super().importance(ctx)
        return {"G": self.scripted(len(self.history), self.masks["G"].model, self.masks["G"].units)}

    def decide(self, ctx, step):
        moments = {}
        for key, masks in self.masks.items():
            moments.update({f"{key}:{k}": v for k, v in first_moment_slices(masks.model, ctx.optimizers[key], held(masks)).items()})
        self.moments_of_held.append(moments)
        self.before.append({key: state_of(m.model) for key, m in self.masks.items()})
        super().decide(ctx, step)
        self.after.append({key: state_of(m.model) for key, m in self.masks.items()})
        self.frozen_copy = {key: slices(m.model, m.frozen) for key, m in self.masks.items()}

    def on_step_end(self, ctx, step):
        super().on_step_end(ctx, step)
        for key, masks in self.masks.items():
            if self.frozen_copy is not None and not equal(slices(masks.model, masks.frozen), self.frozen_copy[key]):
                self.frozen_drift.append((step, key))
        if not all_zero(slices(ctx.G_ema, self.masks["G"].pruned)):
            self.ema_unmasked.append(step)


class DAPRecorder(Recorder, DAP):
    pass


class RICKRecorder(Recorder, RICK):
    pass


def adapt(sources, arch, name, method, options, steps, scripted=None, warmup_steps=1, **kw):
    cls, config = (DAPRecorder, DAPConfig) if method == "dap" else (RICKRecorder, RICKConfig)
    probe = cls(config.from_dict(options), scripted=scripted)
    run(sources / arch, sources / "data", sources / name, method, options, steps=steps, method_instance=probe,
        warmup_steps=warmup_steps, **kw)
    return probe, sources / name


COMMON = {"units": ["*"], "interval": 2, "dynamic": True, "discriminator": True, "fisher_samples": 2, "fisher_seed": 0}
DAP_OPTIONS = {**COMMON, "fisher": "continuous", "fisher_mode": "mean", "ratio_rule": "cumulative_share", "tau": 0.3,
               "max_layer_ratio": 0.5, "freeze_share": 0.4, "budget": None, "permanent": False, "revive": True}
RICK_OPTIONS = {**COMMON, "fisher": "ema", "ratio_rule": "global_percentile", "fisher_quantile": 60.0,
                "prune_quantile": 20.0, "permanent": True, "revive": False}


# ----------------------------------------------------------------------------- 1. resume
@pytest.mark.parametrize("arch,method", [("dcgan", "dap"), ("dcgan", "rick"), ("stylegan2", "dap"), ("stylegan2", "rick")])
def test_resumed_run_equals_the_straight_run(sources, arch, method):
    options = DAP_OPTIONS if method == "dap" else RICK_OPTIONS
    # warm-up 1, interval 2: decisions after steps 1, 3 | checkpoint-4 | 5, 7; masks, Fisher, D_ema and history
    # must cross the checkpoint
    straight, out_a = adapt(sources, arch, f"{arch}-{method}-a", method, options, steps=8, save_every=4)
    assert [h["step"] for h in straight.history] == [1, 3, 5, 7]
    assert any(m.any() for m in straight.masks["G"].pruned.values())
    out_b = sources / f"{arch}-{method}-b"
    shutil.copytree(out_a / "checkpoint-4", out_b / "checkpoint-4")
    resumed, _ = adapt(sources, arch, out_b.name, method, options, steps=8, save_every=4, resume="latest")
    assert len(resumed.before) == 2  # only the decisions after the checkpoint ran again
    assert equal(state_of(straight.ctx.G), state_of(resumed.ctx.G))                       # trained G
    assert equal(state_of(straight.ctx.D), state_of(resumed.ctx.D))                       # trained D
    assert equal(state_of(AutoGenerator.from_pretrained(out_a)), state_of(AutoGenerator.from_pretrained(out_b)))  # EMA
    assert equal(state_of(AutoDiscriminator.from_pretrained(out_a)), state_of(AutoDiscriminator.from_pretrained(out_b)))
    assert equal(state_of(straight.D_ema), state_of(resumed.D_ema))
    assert (out_a / "pruning.json").read_text() == (out_b / "pruning.json").read_text()
    for key in straight.masks:
        assert equal(straight.masks[key].pruned, resumed.masks[key].pruned)
        assert equal(straight.masks[key].frozen, resumed.masks[key].frozen)


# ----------------------------------------------------------------------------- 2. revival and permanence
def prune_then_keep(unit_name: str):
    """Scripted generator importance: decision 0 prunes filter 0 of ``unit_name``, decision 1 filter 1 instead
    (a non-permanent rule keeps filter 0 again). Other units are uniform: nothing there falls under tau."""
    def scripted(decision: int, G, units) -> list[torch.Tensor]:
        importance = []
        for unit in units:
            values = torch.ones(unit_size(G, unit), dtype=torch.float64)
            if unit.name == unit_name:
                values[decision] = 1e-6
            importance.append(values)
        return importance
    return scripted


REVIVAL_OPTIONS = {**DAP_OPTIONS, "discriminator": False, "tau": 0.05, "max_layer_ratio": 0.5, "freeze_share": 0.0}


@pytest.mark.parametrize("arch", ["stylegan2", "dcgan"])
def test_revived_filter_gets_back_exactly_its_values_at_pruning(sources, arch):
    unit = SCRIPTED_UNIT[arch]
    options = {**REVIVAL_OPTIONS, "permanent": False, "revive": True}
    probe, _ = adapt(sources, arch, f"revive-{arch}", "dap", options, steps=4, scripted=prune_then_keep(unit), warmup_steps=0)
    G = probe.ctx.G
    assert [h["step"] for h in probe.history] == [2, 4]
    assert probe.masks["G"].pruned[unit].tolist()[:2] == [False, True]
    filter0, filter1 = only(G, unit, 0), only(G, unit, 1)
    at_pruning = as_model(G, probe.before[0]["G"])          # G just before decision 0 zeroed filter 0
    after_revival = as_model(G, probe.after[1]["G"])
    assert all_zero(slices(as_model(G, probe.after[0]["G"]), filter0))
    assert equal(slices(after_revival, filter0), slices(at_pruning, filter0))
    assert all_zero(slices(after_revival, filter1))
    assert not equal(probe.before[1]["G"], probe.after[0]["G"])  # training moved G in between: a restore, not a standstill


def test_without_revive_a_released_filter_restarts_from_zero(sources):
    unit = SCRIPTED_UNIT["stylegan2"]
    options = {**REVIVAL_OPTIONS, "permanent": False, "revive": False}
    probe, _ = adapt(sources, "stylegan2", "no-revive", "dap", options, steps=4, scripted=prune_then_keep(unit), warmup_steps=0)
    assert probe.masks["G"].pruned[unit].tolist()[:2] == [False, True]
    assert all_zero(slices(as_model(probe.ctx.G, probe.after[1]["G"]), only(probe.ctx.G, unit, 0)))


def test_permanent_pruning_keeps_the_filter_pruned_to_the_exported_model(sources):
    unit = SCRIPTED_UNIT["stylegan2"]
    options = {**REVIVAL_OPTIONS, "permanent": True, "revive": True}  # revive must not undo permanence
    probe, out = adapt(sources, "stylegan2", "permanent", "dap", options, steps=4, scripted=prune_then_keep(unit), warmup_steps=0)
    assert probe.masks["G"].pruned[unit].tolist()[:2] == [True, True]
    both = only(probe.ctx.G, unit, 0, 1)
    assert all_zero(slices(as_model(probe.ctx.G, probe.after[1]["G"]), both))
    assert all_zero(slices(AutoGenerator.from_pretrained(out), both))


# ----------------------------------------------------------------------------- 3. each masking mechanism
def test_held_filters_get_zero_gradients_and_first_moments_and_do_not_move():
    G, _ = tiny_stylegan2_models()
    masks = UnitMasks(G, G.fisher_units())
    masks.pruned["convs.0.conv.weight"][1] = True
    masks.frozen["convs.2.conv.weight"][2] = True
    masks.frozen["convs.1.conv.modulation"][0] = True
    optimizer = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.9, 0.99))

    def backward(seed):
        optimizer.zero_grad()
        z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(seed))
        G(z, noise_mode="const").square().mean().backward()

    for seed in range(2):  # unmasked steps first: every moment is non-zero when the masks arrive
        backward(seed)
        optimizer.step()
    masks.apply_to_weights()
    frozen_before = slices(G, masks.frozen)
    free_before = slices(G, only(G, "convs.3.conv.weight", 0))
    for seed in range(2, 4):
        backward(seed)
        masks.mask_gradients(optimizer)
        assert all_zero(slices(G, held(masks), {n: p.grad for n, p in G.named_parameters()}))
        optimizer.step()
        masks.apply_to_weights()
    assert all_zero(first_moment_slices(G, optimizer, held(masks)))
    assert not all_zero(first_moment_slices(G, optimizer, only(G, "convs.3.conv.weight", 0)))
    assert equal(slices(G, masks.frozen), frozen_before)        # frozen: bit for bit, through Adam's momentum
    assert all_zero(slices(G, masks.pruned))
    assert not equal(slices(G, only(G, "convs.3.conv.weight", 0)), free_before)


def test_second_moments_of_held_filters_decay_as_in_rick_or_are_held_so_a_release_takes_no_oversized_step():
    unit = "convs.2.conv.weight"

    def run(hold: bool):
        G, _ = tiny_stylegan2_models()
        masks = UnitMasks(G, G.fisher_units())
        # StyleGAN2's beta1 = 0; beta2 0.9 instead of 0.99 makes a 50-step hold decay the moment as 500 steps would
        optimizer = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.9))

        def step(seed):
            optimizer.zero_grad()
            z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(seed))
            G(z, noise_mode="const").square().mean().backward()
            masks.mask_gradients(optimizer, hold_second_moments=hold)  # held or not: its update is exactly 0
            optimizer.step()
            masks.restore_second_moments()
            masks.apply_to_weights()

        def second_moments():
            return slices(G, only(G, unit, 1), {n: optimizer.state[p]["exp_avg_sq"] for n, p in G.named_parameters()})

        for seed in range(50):
            step(seed)
        before = second_moments()
        masks.frozen[unit][1] = True  # held for 50 steps
        for seed in range(50, 100):
            step(seed)
        during = second_moments()
        masks.frozen[unit][1] = False
        weights = slices(G, only(G, unit, 1))
        step(100)
        moved = max(float((slices(G, only(G, unit, 1))[k] - weights[k]).abs().max()) / 1e-3 for k in weights)
        return before, during, moved

    before, during, moved_decayed = run(hold=False)
    assert all(torch.allclose(during[k], before[k] * 0.9**50, rtol=1e-4) for k in before)  # RICK: decayed
    before, during, moved_held = run(hold=True)
    assert all(torch.equal(during[k], before[k]) for k in before)  # held as they were
    # released: the first step after a decayed moment (x 0.005) is several times the step after a held one
    assert moved_decayed > 3 * moved_held > 0, (moved_held, moved_decayed)


@pytest.mark.parametrize("keep", [False, True])
def test_a_pruned_stylegan2_filter_keeps_its_score_instead_of_the_demodulation_inflated_one(keep):
    from fsgen_hub.methods.fisher import ContinuousFisher, squared_gradients, unit_scores
    from fsgen_hub.methods.pruning import cumulative_share_decision

    G, _ = tiny_stylegan2_models(channels=8)
    method = DAP(DAPConfig(keep_pruned_scores=keep))
    units = [u for u in G.fisher_units() if u.name == "convs.1.conv.weight"]
    method.masks = {"G": UnitMasks(G, units)}
    method.fisher = {"G": ContinuousFisher([unit_size(G, u) for u in units])}

    def scores(seed):
        G.zero_grad()
        z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(seed))
        G(z, noise_mode="const").square().mean().backward()
        measured = unit_scores(squared_gradients(G), units)
        return method._held_pruned_scores("G", measured) if keep else measured, measured

    for seed in range(3):
        method.fisher["G"].update(scores(seed)[0])
    before = method.fisher["G"].values[0].clone()
    weakest = int(before.argmin())
    method.masks["G"].update([torch.arange(8) == weakest], [torch.zeros(8, dtype=torch.bool)], permanent=False, revive=True)
    for seed in range(3, 6):
        used, measured = scores(seed)
        method.fisher["G"].update(used)
    live = torch.arange(8) != weakest
    # demodulation divides a zero-weight filter by sqrt(eps): its measured squared gradient dwarfs every live one
    assert measured[0][weakest] > 1e3 * measured[0][live].max()
    estimate = method.fisher["G"].values[0]
    prune, freeze, _ = cumulative_share_decision([estimate], tau=0.05, max_layer_ratio=2 / 8, freeze_share=0.5, budget=None)
    if keep:  # held at its estimate from before pruning: still among the least important, pruned again
        assert estimate[weakest] == before[weakest] and prune[0][weakest] and not freeze[0][weakest]
    else:  # the inflated value makes it the most important filter: revived and frozen at the next decision
        assert int(estimate.argmax()) == weakest and not prune[0][weakest] and freeze[0][weakest]


def test_freeze_and_prune_thresholds_at_a_tie():
    units = [FisherUnit("a", "conv", [("a", 0)]), FisherUnit("b", "conv", [("b", 0)]),
             FisherUnit("skip", "skip", [("skip", 0)], strict_prune=True)]
    scores = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0]), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])]
    # each pool of five filters has its 25th percentile at 2.0 and its 50th at 3.0: filters sit AT the lines.
    # RICK's code freezes score > cutline, prunes score <= pruneline, and < pruneline for D's skip convolutions
    # (../shared/fixtures/rick_fisher_32/README.md)
    prune, freeze, thresholds = pooled_percentile_decision(scores, units, fisher_quantile=50, prune_quantile=25)
    assert thresholds["conv"] == thresholds["skip"] == {"cutline": 3.0, "pruneline": 2.0}
    assert [m.tolist() for m in freeze] == [[False, False, False], [True, True], [False, False, False, True, True]]
    assert [m.tolist() for m in prune] == [[True, True, False], [False, False], [True, False, False, False, False]]


def test_stylegan2_dap_with_freezing_holds_frozen_values_moments_and_the_ema_masks(sources):
    probe, _ = adapt(sources, "stylegan2", "sg2-freeze", "dap", {**DAP_OPTIONS, "freeze_share": 0.5}, steps=7)
    assert [h["step"] for h in probe.history] == [1, 3, 5, 7]
    for key in ("G", "D"):
        assert any(m.any() for m in probe.masks[key].frozen.values()) and any(m.any() for m in probe.masks[key].pruned.values())
    # the first moments of every entry held since the previous decision are zero when the next one comes
    assert all(moments and all_zero(moments) for moments in probe.moments_of_held[1:])
    assert probe.frozen_drift == []     # frozen entries equal the copy taken at decision time, after every step
    assert probe.ema_unmasked == []     # the EMA generator carries the pruning masks after every step
    free = {n: ~held(probe.masks["G"])[n] for n in probe.masks["G"].names}  # and the others did train
    G = probe.ctx.G
    assert not equal(slices(as_model(G, probe.after[-2]["G"]), free), slices(as_model(G, probe.before[-1]["G"]), free))


def test_exported_folder_and_export_hook_carry_the_zeros(sources):
    probe, out = adapt(sources, "dcgan", "dcgan-export", "dap", DAP_OPTIONS, steps=4, warmup_steps=0)
    pruned = {k: v.clone() for k, v in probe.masks["G"].pruned.items()}
    assert any(m.any() for m in pruned.values())
    assert probe.ema_unmasked == []
    assert all_zero(slices(AutoGenerator.from_pretrained(out), pruned))
    # export on a generator that never saw the masks (e.g. weights restored from a best checkpoint)
    unmasked = AutoGenerator.from_pretrained(sources / "dcgan")
    assert not all_zero(slices(unmasked, pruned))
    assert all_zero(slices(probe.export(probe.ctx, unmasked), pruned))
