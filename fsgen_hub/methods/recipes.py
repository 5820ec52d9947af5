"""Training recipes of the official implementations, as TrainingArguments defaults (see
``AdaptationMethod.training_defaults``). Each dict holds what the source code runs; settings that only
make sense for a StyleGAN2 generator (R1 on its scale, lazy regularisation, path length, style mixing)
are kept apart and apply only to generators with a style space. Adam's learning rate and betas stay the
architecture's (StyleGAN2 0.002, (0, 0.99), what rosinality's trainer, CDC, RICK and FreezeD use);
recipes from non-equalized-lr code (AdaFM's 1e-4) are not transferable and are not copied.
"""
from __future__ import annotations

from typing import Any

# rosinality/stylegan2-pytorch train.py defaults, kept by CDC and RICK (their train.py argparse defaults):
# r1 10 every 16 steps (d_reg_every), path_regularize 2 every 4 steps (g_reg_every) with path_batch_shrink 2,
# mixing 0.9, lr corrected by k/(k+1) and betas by **(k/(k+1)), augment off, g_ema decay 0.5 ** (32 / 10k)
ROSINALITY_STYLE = {"r1_gamma": 10.0, "r1_every": 16, "lazy_regularization": True, "pl_weight": 2.0, "pl_every": 4,
                    "pl_batch_shrink": 2, "style_mixing": 0.9}
ROSINALITY_COMMON = {"augment": "none", "ema_half_life": 10_000 / 32}

RECIPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (every architecture, StyleGAN2 only)
    # CDC train.py: batch 4; everything in G and D trains (g_optim over generator.parameters())
    "cdc": ({**ROSINALITY_COMMON, "batch_size": 4}, ROSINALITY_STYLE),
    # RICK train_dynamic_update_prune.py + README (Babies): batch 2, 'convs' of G, D without convs.0,
    # warm-up 250 of 1750 iterations training D's 'final' layers only
    "rick": ({**ROSINALITY_COMMON, "batch_size": 2, "g_groups": "synthesis", "d_groups": "blocks,final",
              "warmup_steps": 250, "warmup_d_groups": "final"}, ROSINALITY_STYLE),
    # fine-tuning and EWC as the few-shot papers (CDC, RICK, AdAM) run these baselines: rosinality's trainer,
    # CDC's batch 4. EWC has no code from its authors (Sony's NNabla re-implementation: stylegan2-ewc)
    "finetune": ({**ROSINALITY_COMMON, "batch_size": 4}, ROSINALITY_STYLE),
    "ewc": ({**ROSINALITY_COMMON, "batch_size": 4}, ROSINALITY_STYLE),
    # FreezeD stylegan/finetune.py (--mixing --loss r1 --sched): batch 8 at 64-256 px, R1 10 on every step
    # (no lazy regularisation, no path length), mixing 0.9, accumulate decay 0.999 (half-life 692.8 steps)
    "freezed": ({"augment": "none", "batch_size": 8, "ema_half_life": 692.8},
                {"r1_gamma": 10.0, "r1_every": 1, "lazy_regularization": False, "style_mixing": 0.9}),
    # AdaFM (GANTransferLimitedData, configs/Flowers.yaml and Flower_[h]our.py): batch 16, R1 ('real') 10 on
    # every step, model average beta 0.999, D's first layers frozen (D_Layer_FIX = 2; here fromRGB); its lr
    # 1e-4 is for a non-equalized GP-GAN, so the architecture's stays
    "adafm": ({"augment": "none", "batch_size": 16, "ema_half_life": 692.8, "d_groups": "blocks,final"},
              {"r1_gamma": 10.0, "r1_every": 1}),
    # BSA (small-dataset-image-generation, configs/default.yml): batch 25 (SNGAN), no discriminator, no augmentation
    "bsa": ({"augment": "none", "batch_size": 25}, {}),
}
RECIPES["dap"] = RECIPES["rick"]  # DAP is RICK's descendant: same recipe


def recipe_for(method: str, G) -> dict[str, Any]:
    """The recipe of ``method`` for generator ``G`` (empty for methods without one, e.g. D3T)."""
    common, style = RECIPES.get(method, ({}, {}))
    return {**common, **(style if getattr(G, "has_style_space", False) else {})}


# The official runs behind these recipes last 1,750 (RICK) to 5,002 (CDC) iterations. Settings counted in
# steps (a warm-up, an EMA half-life) keep their values from 1,000 steps on and shrink in proportion below,
# so that a short run still trains G for most of its steps and its EMA generator follows it.
FULL_LENGTH_STEPS = 1000
STEP_COUNTED = ("warmup_steps", "ema_half_life")


def for_run(recipe: dict[str, Any], steps: int, fresh_discriminator: bool) -> dict[str, Any]:
    """``recipe`` adapted to a run of ``steps`` steps; with a freshly initialised D (the source has none) the
    recipe's D groups, which say what of the *source* D to keep, do not apply: all of D trains."""
    recipe = dict(recipe)
    if steps < FULL_LENGTH_STEPS:
        for key in STEP_COUNTED:
            if recipe.get(key):
                value = recipe[key] * steps / FULL_LENGTH_STEPS
                recipe[key] = int(value) if key == "warmup_steps" else value
    if fresh_discriminator:
        for key in ("d_groups", "warmup_d_groups"):
            if key in recipe:
                recipe[key] = "all"
    return recipe
