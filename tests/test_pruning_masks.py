"""DAP/RICK masks, one mechanism at a time: resume, revival, permanence, Adam moments, frozen values,
the freeze-threshold tie, the EMA generator, the exported folder and the slimmed export.

Every run passes its method options explicitly (never relying on a method's default values), and the
expected values are taken independently of the library's own bookkeeping: deep copies of the
generator's tensors made at decision time, not ``FilterMasks.frozen_values``/``pruned_values``.
"""
from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from helpers import run, save_tiny_dcgan_source, save_tiny_stylegan2_source, tiny_stylegan2_models, write_random_images

from fsgen_hub.hub import AutoDiscriminator, AutoGenerator
from fsgen_hub.methods.dap import DAP, DAPConfig
from fsgen_hub.methods.pruning import FilterMasks, global_percentile_decision
from fsgen_hub.methods.rick import RICK, RICKConfig

# a middle filter layer of each tiny generator, the one whose importance the revival tests script
SCRIPTED_LAYER = {"stylegan2": "convs.0", "dcgan": "main.3"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pruning")
    save_tiny_dcgan_source(tmp / "dcgan")
    save_tiny_stylegan2_source(tmp / "stylegan2")
    write_random_images(tmp / "data")
    return tmp


# ----------------------------------------------------------------------------- independent views of a model
def entries(G, masks: dict[str, torch.Tensor], consumers: bool = True):
    """(key, tensor, axis, mask) for the selected filters of every layer: own kernel slice, coupled tensors and,
    when asked, the consumer slices that read the filter; ``masks`` maps layer name -> bool per filter."""
    tensors = {**dict(G.named_parameters()), **dict(G.named_buffers())}
    for layer in G.filter_layers():
        mask = masks.get(layer.name)
        if mask is None or not mask.any():
            continue
        own = next(name for name, t in tensors.items() if t is layer.weight)
        for name, axis in [(own, layer.out_dim), *layer.coupled, *(layer.consumers if consumers else [])]:
            if name in tensors:
                yield f"{layer.name}>{name}", tensors[name], axis, mask.to(tensors[name].device)


def slices(G, masks: dict[str, torch.Tensor], consumers: bool = True) -> dict[str, torch.Tensor]:
    """Copies of the selected filters' entries (see ``entries``)."""
    return {key: t.detach().transpose(0, axis)[mask].clone() for key, t, axis, mask in entries(G, masks, consumers)}


def zeroed(G, masks: dict[str, torch.Tensor]):
    """A copy of ``G`` with the selected filters removed by hand: entries and consumer slices set to zero."""
    model = copy.deepcopy(G)
    with torch.no_grad():
        for _, tensor, axis, mask in entries(model, masks):
            tensor.transpose(0, axis)[mask] = 0
    return model


def state_of(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def all_zero(values: dict[str, torch.Tensor]) -> bool:
    return all(torch.count_nonzero(v) == 0 for v in values.values())


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def masks_of(method, which: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in getattr(method.masks, which).items()}


# ----------------------------------------------------------------------------- a method that records what it sees
class Recorder:
    """Mixed into DAP/RICK: optionally scripts the importance of each decision, and records, independently of
    the library's bookkeeping, the generator around each decision, the Adam moments of masked entries, the
    frozen entries after every step and whether the EMA generator carries the masks."""

    def __init__(self, config, scripted=None):
        super().__init__(config)
        self.scripted = scripted          # scripted(decision_index, layers) -> importance per layer
        self.before, self.after = [], []  # G's tensors just before / after each decision
        self.moments_of_masked = []       # per decision: exp_avg/exp_avg_sq of the then-masked entries
        self.frozen_drift = []            # steps at which a frozen entry differed from its decision-time copy
        self.ema_unmasked = []            # steps at which a pruned entry of the EMA generator was not zero
        self.frozen_copy = None           # the frozen entries as the latest decision left them

    def prepare(self, ctx):
        super().prepare(ctx)
        self.ctx = ctx

    def importance(self, ctx):
        if self.scripted is None:
            return super().importance(ctx)
        return self.scripted(len(self.history), self.masks.layers())

    def decide(self, ctx, step):
        G = ctx.unwrap(ctx.G)
        optimizer = ctx.optimizers["G"]
        optimizer = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
        moments = {f"pruned:{k}": v for k, v in self._moment_slices(G, optimizer, masks_of(self, "pruned"), True).items()}
        moments.update({f"frozen:{k}": v for k, v in self._moment_slices(G, optimizer, masks_of(self, "frozen"), False).items()})
        self.moments_of_masked.append(moments)
        self.before.append(state_of(G))
        super().decide(ctx, step)
        self.after.append(state_of(G))
        self.frozen_copy = slices(G, masks_of(self, "frozen"), consumers=False)

    @staticmethod
    def _moment_slices(G, optimizer, masks, consumers):
        params = dict(G.named_parameters())
        out = {}
        for moment in ("exp_avg", "exp_avg_sq"):
            shadow = copy.deepcopy(G)  # the moment tensors laid out like G, to reuse slices()
            with torch.no_grad():
                for name, p in shadow.named_parameters():
                    p.copy_(optimizer.state.get(params[name], {}).get(moment, torch.zeros_like(p)))
                for b in shadow.buffers():
                    b.zero_()
            out.update({f"{moment}:{k}": v for k, v in slices(shadow, masks, consumers=consumers).items()})
        return out

    def on_step_end(self, ctx, step):
        super().on_step_end(ctx, step)
        G = ctx.unwrap(ctx.G)
        if self.frozen_copy is not None and not equal(slices(G, masks_of(self, "frozen"), consumers=False), self.frozen_copy):
            self.frozen_drift.append(step)
        if not all_zero(slices(ctx.G_ema, masks_of(self, "pruned"))):
            self.ema_unmasked.append(step)


class DAPRecorder(Recorder, DAP):
    pass


class RICKRecorder(Recorder, RICK):
    pass


def recorder(method: str, options: dict, scripted=None):
    cls, config = (DAPRecorder, DAPConfig) if method == "dap" else (RICKRecorder, RICKConfig)
    return cls(config.from_dict(options), scripted=scripted)


def adapt(sources, arch, name, method, options, steps, scripted=None, **kw):
    probe = recorder(method, options, scripted)
    trainer, out = run(sources / arch, sources / "data", sources / name, method, options, steps=steps,
                       method_instance=probe, **kw)
    return probe, out


DAP_OPTIONS = {"fisher": "continuous", "fisher_mode": "mean", "ratio_rule": "cumulative_share", "interval": 2,
               "warmup_steps": 1, "tau": 0.3, "max_layer_ratio": 0.5, "freeze_share": 0.4, "budget": None,
               "permanent": False, "revive": True, "export_slim": False}
RICK_OPTIONS = {"fisher": "on_demand", "fisher_samples": 2, "ratio_rule": "global_percentile", "interval": 2,
                "warmup_steps": 1, "low_percentile": 20.0, "high_percentile": 70.0, "permanent": True, "revive": False,
                "export_slim": False}


# ----------------------------------------------------------------------------- 1. resume
@pytest.mark.parametrize("arch,method", [("dcgan", "dap"), ("dcgan", "rick"), ("stylegan2", "dap"), ("stylegan2", "rick")])
def test_resumed_run_equals_the_straight_run(sources, arch, method):
    options = DAP_OPTIONS if method == "dap" else RICK_OPTIONS
    # decisions after steps 1, 3 | checkpoint-4 | 5, 7: the resumed run must carry masks, Fisher, history
    straight, out_a = adapt(sources, arch, f"{arch}-{method}-a", method, options, steps=8, save_every=4, keep_checkpoints=2)
    assert [h["step"] for h in straight.history] == [1, 3, 5, 7]
    assert any(m.any() for m in straight.masks.pruned.values())
    resumed_dir = sources / f"{arch}-{method}-b"
    shutil.copytree(out_a / "checkpoint-4", resumed_dir / "checkpoint-4")
    resumed, out_b = adapt(sources, arch, f"{arch}-{method}-b", method, options, steps=8, save_every=4, resume="latest")
    assert len(resumed.before) == 2  # only the decisions after the checkpoint ran again
    assert equal(state_of(straight.ctx.G), state_of(resumed.ctx.G))                       # trained G
    assert equal(state_of(straight.ctx.D), state_of(resumed.ctx.D))                       # D
    assert equal(state_of(AutoGenerator.from_pretrained(out_a)), state_of(AutoGenerator.from_pretrained(out_b)))  # EMA
    assert equal(state_of(AutoDiscriminator.from_pretrained(out_a)), state_of(AutoDiscriminator.from_pretrained(out_b)))
    assert (out_a / "pruning.json").read_text() == (out_b / "pruning.json").read_text()
    assert equal(straight.masks.pruned, resumed.masks.pruned) and equal(straight.masks.frozen, resumed.masks.frozen)


# ----------------------------------------------------------------------------- 2. revival and permanence
def prune_then_keep(layer_name: str):
    """Scripted importance. Decision 0 prunes filter 0 of ``layer_name``; decision 1 makes filter 1 far weaker
    than filter 0's remembered importance, so a non-permanent rule keeps filter 0 and prunes filter 1. The other
    layers are uniform (no filter under tau), so no reader of ``layer_name`` is ever pruned."""
    def scripted(decision: int, layers) -> list[torch.Tensor]:
        importance = []
        for layer in layers:
            values = torch.ones(layer.num_filters)
            if layer.name == layer_name:
                if decision == 0:
                    values[0] = 1e-3
                else:
                    values[:] = 1e-3
                    values[0] = 1.0     # replaced by the remembered 1e-3 while pruned
                    values[1] = 1e-6
            importance.append(values)
        return importance
    return scripted


REVIVAL_OPTIONS = {**DAP_OPTIONS, "warmup_steps": 0, "tau": 0.05, "max_layer_ratio": 0.5, "freeze_share": 0.0}


@pytest.mark.parametrize("arch", ["stylegan2", "dcgan"])
def test_revived_filter_gets_back_exactly_its_values_at_pruning(sources, arch):
    options = {**REVIVAL_OPTIONS, "permanent": False, "revive": True}
    layer = SCRIPTED_LAYER[arch]
    probe, out = adapt(sources, arch, f"revive-{arch}", "dap", options, steps=4, scripted=prune_then_keep(layer))
    G = probe.ctx.G
    filter0 = _only(G, layer, 0)
    filter1 = _only(G, layer, 1)
    assert [h["step"] for h in probe.history] == [2, 4]
    assert probe.masks.pruned[layer].tolist()[:2] == [False, True]
    at_pruning = _as_model(G, probe.before[0])          # G just before decision 0 zeroed filter 0
    after_revival = _as_model(G, probe.after[1])
    assert all_zero(slices(_as_model(G, probe.after[0]), filter0))
    assert equal(slices(after_revival, filter0), slices(at_pruning, filter0))
    assert all_zero(slices(after_revival, filter1))
    # training moved the model between the decisions: the equality is a restore, not a standstill
    assert not equal(probe.before[1], probe.after[0])


def test_without_revive_a_kept_filter_restarts_from_zero(sources):
    options = {**REVIVAL_OPTIONS, "permanent": False, "revive": False}
    probe, _ = adapt(sources, "stylegan2", "no-revive", "dap", options, steps=4, scripted=prune_then_keep("convs.0"))
    filter0 = _only(probe.ctx.G, "convs.0", 0)
    assert probe.masks.pruned["convs.0"].tolist()[:2] == [False, True]
    assert all_zero(slices(_as_model(probe.ctx.G, probe.after[1]), filter0))


def test_permanent_pruning_keeps_the_filter_pruned_to_the_exported_model(sources):
    options = {**REVIVAL_OPTIONS, "permanent": True, "revive": True}  # revive must not undo permanence
    probe, out = adapt(sources, "stylegan2", "permanent", "dap", options, steps=4, scripted=prune_then_keep("convs.0"))
    assert probe.masks.pruned["convs.0"].tolist()[:2] == [True, True]
    both = _only(probe.ctx.G, "convs.0", 0, 1)
    assert all_zero(slices(_as_model(probe.ctx.G, probe.after[1]), both))
    assert all_zero(slices(AutoGenerator.from_pretrained(out), both))
    assert json.loads((out / "pruning.json").read_text())["decisions"][1]["ratios"][1] == 0.5


def _only(G, layer_name, *indices):
    layer = next(l for l in G.filter_layers() if l.name == layer_name)
    mask = torch.zeros(layer.num_filters, dtype=torch.bool)
    mask[list(indices)] = True
    return {layer_name: mask}


def _as_model(G, state):
    model = copy.deepcopy(G)
    model.load_state_dict(state)
    return model


# ----------------------------------------------------------------------------- 3. each masking mechanism
def _masked_stylegan2():
    G, _ = tiny_stylegan2_models()
    layers = G.filter_layers()
    masks = FilterMasks(G, layers)
    masks.pruned["convs.0"][1] = True
    masks.frozen["convs.2"][2] = True   # reads convs.1, unpruned: no entry is both frozen and pruned
    masks.frozen["conv1"][0] = True
    return G, masks


def _train_step(G, optimizer, seed):
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(seed))
    optimizer.zero_grad()
    G(z, noise_mode="const").square().mean().backward()


def test_masked_adam_moments_are_zero():
    G, masks = _masked_stylegan2()
    optimizer = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.9, 0.99))
    for seed in range(2):  # unmasked steps first: every moment non-zero when the masks arrive
        _train_step(G, optimizer, seed)
        optimizer.step()
    for seed in range(2, 4):
        _train_step(G, optimizer, seed)
        masks.mask_gradients(optimizer)
        optimizer.step()
        masks.apply_to_weights()
    moments = Recorder._moment_slices(G, optimizer, masks.pruned, consumers=True)
    moments.update(Recorder._moment_slices(G, optimizer, masks.frozen, consumers=False))
    assert moments and all_zero(moments)
    unmasked = Recorder._moment_slices(G, optimizer, _only(G, "convs.0", 0), consumers=True)
    assert all(torch.count_nonzero(v) > 0 for k, v in unmasked.items() if "exp_avg_sq" in k)


def test_frozen_entries_are_restored_and_pruned_ones_zeroed_after_any_update():
    G, masks = _masked_stylegan2()
    masks.snapshot_frozen()
    frozen_before = slices(G, masks.frozen, consumers=False)
    free_before = slices(G, _only(G, "convs.3", 0))
    with torch.no_grad():  # what a step with momentum, weight decay or a buffer update could do
        for t in [*G.parameters(), *G.buffers()]:
            t.add_(torch.randn_like(t) * 0.1)
    masks.apply_to_weights()
    assert equal(slices(G, masks.frozen, consumers=False), frozen_before)
    assert all_zero(slices(G, masks.pruned))
    assert not equal(slices(G, _only(G, "convs.3", 0)), free_before)


def test_freeze_and_prune_thresholds_at_a_tie():
    importance = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0])]
    # over all five filters the 25th percentile is 2.0 and the 50th is 3.0: filters AT a threshold. RICK's code
    # freezes when score > cutline and prunes when score <= pruneline (../shared/fixtures/rick_fisher_32/README.md)
    prune, freeze = global_percentile_decision(importance, low=25, high=50)
    assert [m.tolist() for m in prune] == [[True, True, False], [False, False]]    # <= low: pruned
    assert [m.tolist() for m in freeze] == [[False, False, False], [True, True]]   # > high only: the tie is trained


def test_stylegan2_dap_with_freezing_masks_adam_keeps_frozen_values_and_masks_the_ema(sources):
    options = {**DAP_OPTIONS, "freeze_share": 0.5}
    probe, out = adapt(sources, "stylegan2", "sg2-freeze", "dap", options, steps=7)
    assert [h["step"] for h in probe.history] == [1, 3, 5, 7] and any(m.any() for m in probe.masks.frozen.values())
    assert any(m.any() for m in probe.masks.pruned.values())
    # the moments of every entry masked since the previous decision are zero when the next one comes
    assert all(all_zero(m) for m in probe.moments_of_masked[1:]) and any(probe.moments_of_masked[1:])
    assert probe.frozen_drift == []     # frozen entries equal the copy taken at decision time, every step
    assert probe.ema_unmasked == []     # the EMA generator carries the pruning masks, every step
    # the unfrozen, unpruned entries did train between the decisions
    free = {n: ~(probe.masks.pruned[n] | probe.masks.frozen[n]) for n in probe.masks.names}
    G = probe.ctx.G
    assert not equal(slices(_as_model(G, probe.after[-2]), free, consumers=False),
                     slices(_as_model(G, probe.before[-1]), free, consumers=False))


def test_exported_folder_and_export_hook_carry_the_zeros(sources):
    probe, out = adapt(sources, "dcgan", "dcgan-export", "dap", {**DAP_OPTIONS, "warmup_steps": 0}, steps=4)
    pruned = masks_of(probe, "pruned")
    assert any(m.any() for m in pruned.values())
    assert probe.ema_unmasked == []
    assert all_zero(slices(AutoGenerator.from_pretrained(out), pruned))
    # export on a generator that never saw the masks (e.g. weights restored from a best checkpoint)
    unmasked = AutoGenerator.from_pretrained(sources / "dcgan")
    assert not all_zero(slices(unmasked, pruned))
    assert all_zero(slices(probe.export(probe.ctx, unmasked), pruned))


def test_export_slim_through_the_trainer_equals_the_masked_model(sources):
    options = {**DAP_OPTIONS, "export_slim": True}

    class SlimProbe(DAPRecorder):
        def export(self, ctx, generator):
            self.masked = zeroed(generator, masks_of(self, "pruned"))
            return super().export(ctx, generator)

    probe = SlimProbe(DAPConfig.from_dict(options))
    _, out = run(sources / "stylegan2", sources / "data", sources / "slim", "dap", options, steps=4, method_instance=probe)
    assert any(m.any() for m in probe.masks.pruned.values())
    slim = AutoGenerator.from_pretrained(out)
    masked = probe.masked.eval()
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in masked.parameters())
    z = torch.randn(3, slim.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (slim(z, noise_mode="const") - masked(z, noise_mode="const")).abs().max() <= 1e-5
