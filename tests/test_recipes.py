"""Method recipes in the trainer: defaults that yield to explicit settings, parameter groups, StyleGAN2's
style mixing, lazy path-length regularisation and the lazy-regularisation Adam correction (tiny models)."""
from __future__ import annotations

import contextlib
import json

import pytest
import torch
from helpers import save_tiny_dcgan_source, tiny_stylegan2_config, write_random_images

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import AdaptationTrainer, RunState
from fsgen_hub.utils.io import read_jsonl


def tiny_stylegan2(folder):
    torch.manual_seed(0)
    config = tiny_stylegan2_config(channels=8)
    G = StyleGAN2Generator(config)
    G.mean_latent(64)
    G.save_pretrained(folder, discriminator=StyleGAN2Discriminator(config))
    return G


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipes")
    tiny_stylegan2(tmp / "sg2")
    save_tiny_dcgan_source(tmp / "dcgan")
    write_random_images(tmp / "data")
    return tmp


def args_for(tmp, source, name, **kw):
    base = dict(source=str(tmp / source), data=str(tmp / "data"), shots=4, steps=6, output_dir=str(tmp / name),
                save_every=0, sample_every=0, device="cpu", seed=1, log_every=1)
    return TrainingArguments(**{**base, **kw})


def test_recipe_fills_only_what_the_user_left_unset(tmp):
    out = AdaptationTrainer(args_for(tmp, "dcgan", "r1", method="rick", warmup_steps=1, batch_size=3, r1_gamma=0.5)).train()
    used = json.loads((out / "logs" / "run_args.json").read_text())
    assert used["batch_size"] == 3 and used["r1_gamma"] == 0.5       # explicit wins
    assert used["r1_every"] == 16 and used["augment"] == "none" and used["d_groups"] == "blocks,final"  # RICK's recipe
    assert used["lr_g"] == 2e-4 and used["beta1"] == 0.5            # a DCGAN keeps its own Adam settings
    plain = AdaptationTrainer(args_for(tmp, "dcgan", "ft", method="finetune")).train()
    used = json.loads((plain / "logs" / "run_args.json").read_text())
    assert used["batch_size"] == 4                                   # rosinality/CDC's fine-tuning batch
    assert used["r1_gamma"] == 1.0 and used["g_groups"] == "all"    # StyleGAN2's R1 10 is not a DCGAN's: fallback


def test_unknown_parameter_group_is_a_one_line_error(tmp):
    from fsgen_hub.utils.errors import FsgenError

    with pytest.raises(FsgenError, match="unknown parameter group.*mapping, const"):
        AdaptationTrainer(args_for(tmp, "sg2", "bad", method="finetune", g_groups="synthesis,blocks")).train()


def test_rick_on_stylegan2_freezes_mapping_const_conv1_torgb_and_runs_path_length(tmp):
    source = AutoGenerator.from_pretrained(tmp / "sg2")
    out = AdaptationTrainer(args_for(tmp, "sg2", "rick", method="rick", warmup_steps=1, steps=6,
                                     method_options={"interval": 2, "fisher_samples": 2})).train()
    adapted = AutoGenerator.from_pretrained(out)
    groups, before, after = source.parameter_groups(), source.state_dict(), adapted.state_dict()
    for group in ("mapping", "const", "conv1", "torgb"):
        assert groups[group] and all(torch.equal(before[n], after[n]) for n in groups[group]), group
    assert any(not torch.equal(before[n], after[n]) for n in groups["synthesis"])
    log = {rec["step"]: rec for rec in read_jsonl(out / "logs" / "train_log.jsonl")}
    assert "loss_g" not in log[0]                                  # warm-up: no G step
    assert "loss_pl" in log[4] and "loss_pl" not in log[3] and "loss_pl" not in log[5]  # lazy: every 4 steps
    used = json.loads((out / "logs" / "run_args.json").read_text())
    assert used["style_mixing"] == 0.9 and used["pl_weight"] == 2.0
    assert used["ema_half_life"] == pytest.approx(312.5 * used["steps"] / 1000)  # RICK's, fitted to the short run


def test_style_mixing_draws_a_second_latent_and_a_crossover_layer(tmp):
    trainer = AdaptationTrainer(args_for(tmp, "sg2", "mix", method="finetune", style_mixing=1.0))
    G = AutoGenerator.from_pretrained(tmp / "sg2")
    ctx = type("Ctx", (), {"G": G, "step": 0, "unwrap": staticmethod(lambda m: m)})()
    z = torch.randn(3, G.z_dim)
    torch.manual_seed(5)
    mixed = trainer._generate(ctx, z)
    torch.manual_seed(5)
    torch.rand(())
    mix_z = torch.randn_like(z)
    index = int(torch.randint(1, G.n_latent, ()))
    expected = G(z, mix_z=mix_z, mix_index=index)
    assert torch.equal(mixed, expected)
    torch.manual_seed(5)
    trainer.args.style_mixing = 0.0
    assert not torch.allclose(trainer._generate(ctx, z), mixed)


def test_path_length_step_updates_the_running_mean_and_only_trainable_weights(tmp):
    trainer = AdaptationTrainer(args_for(tmp, "sg2", "pl", method="finetune", batch_size=4, pl_weight=2.0, pl_every=4,
                                         pl_batch_shrink=2, style_mixing=0.0))
    G = AutoGenerator.from_pretrained(tmp / "sg2").train()
    for name, p in G.named_parameters():
        p.requires_grad_(name.startswith("convs."))  # a frozen mapping network, as RICK's
    before = {n: p.detach().clone() for n, p in G.named_parameters()}
    opt = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=1e-2)
    accelerator = type("A", (), {"device": torch.device("cpu"), "autocast": staticmethod(contextlib.nullcontext),
                                 "backward": staticmethod(lambda loss: loss.backward()), "unwrap_model": staticmethod(lambda m: m)})()
    ctx = type("Ctx", (), {"G": G, "accelerator": accelerator, "step": 0, "unwrap": staticmethod(lambda m: m)})()
    state = RunState()  # the loop's running mean starts at 0
    values = trainer._path_length_step(ctx, opt, 1, state)
    assert state.mean_path_length == pytest.approx(0.01 * values["path_length"], rel=1e-5)
    moved = {n for n, p in G.named_parameters() if not torch.equal(before[n], p.detach())}
    assert moved and all(n.startswith("convs.") for n in moved)


def test_lazy_regularisation_corrects_adam_like_stylegan2(tmp):
    trainer = AdaptationTrainer(args_for(tmp, "sg2", "lazy", method="finetune", lazy_regularization=True, beta1=0.0, beta2=0.99))
    opt = trainer._adam([torch.nn.Parameter(torch.zeros(1))], 0.002, 4)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.002 * 4 / 5) and group["betas"] == (0.0, pytest.approx(0.99 ** 0.8))
    trainer.args.lazy_regularization = False
    assert trainer._adam([torch.nn.Parameter(torch.zeros(1))], 0.002, 4).param_groups[0]["lr"] == 0.002


def test_freezed_default_trains_the_last_three_d_blocks_and_the_output_layer(tmp):
    from fsgen_hub.auto import AutoDiscriminator

    source_D = AutoDiscriminator.from_pretrained(tmp / "sg2")
    out = AdaptationTrainer(args_for(tmp, "sg2", "freezed", method="freezed", steps=2)).train()
    D = AutoDiscriminator.from_pretrained(out)
    blocks = source_D.blocks()
    before, after = source_D.state_dict(), D.state_dict()
    frozen, trained = blocks[: len(blocks) - 4], blocks[len(blocks) - 4:]   # 3 blocks + final_linear train
    assert frozen and all(torch.equal(before[n], after[n]) for block in frozen for n, _ in block)
    assert all(any(not torch.equal(before[n], after[n]) for n, _ in block) for block in trained)
    used = json.loads((out / "logs" / "run_args.json").read_text())
    assert used["r1_every"] == 1 and used["lazy_regularization"] is False and used["pl_weight"] == 0
    assert used["style_mixing"] == 0.9 and used["batch_size"] == 8


def test_recipe_fits_short_runs_and_leaves_full_length_runs_alone():
    from fsgen_hub.methods.recipes import RECIPES, for_run

    rick = RECIPES["rick"][0]
    assert for_run(rick, 1000, False) == rick and for_run(rick, 1750, False) == rick
    short = for_run(rick, 300, False)
    assert short["warmup_steps"] == 75 and short["ema_half_life"] == pytest.approx(312.5 * 0.3)
    assert short["batch_size"] == rick["batch_size"] and short["d_groups"] == "blocks,final"
    fresh = for_run(rick, 1000, True)
    assert fresh["d_groups"] == "all" and fresh["warmup_d_groups"] == "all" and fresh["g_groups"] == "synthesis"


def test_a_fresh_discriminator_trains_whole_even_under_a_recipe_that_keeps_source_d_layers(tmp):
    from helpers import tiny_dcgan_models

    G, _ = tiny_dcgan_models()
    G.save_pretrained(tmp / "dcgan-no-d")          # a source without D: the trainer starts a fresh one
    out = AdaptationTrainer(args_for(tmp, "dcgan-no-d", "fresh", method="rick", steps=8)).train()
    used = json.loads((out / "logs" / "run_args.json").read_text())
    assert used["d_groups"] == "all" and used["warmup_d_groups"] == "all"
    assert used["warmup_steps"] == int(250 * 8 / 1000)  # scaled to the 8-step run
    fresh_d = json.loads((out / "lineage.json").read_text())["training"]["discriminator"]
    assert fresh_d == "fresh"
