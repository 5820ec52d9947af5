"""TransferGAN fine-tuning: every generator and discriminator weight is trained from the source.

Wang et al., "Transferring GANs: generating images from limited data", ECCV 2018.

Recipe (``fsgen_hub.methods.recipes``): the fine-tuning baseline of CDC/RICK/AdAM, i.e. rosinality's
StyleGAN2 trainer as CDC's train.py sets it: everything trains, batch 4, R1 γ 10 every 16 steps, path
length 2 every 4, style mixing 0.9, lazy-regularisation Adam (lr 0.002), no augmentation, EMA
half-life 312.5 steps.
"""
from __future__ import annotations

from dataclasses import dataclass

from fsgen_hub.methods.base import AdaptationMethod, MethodConfig, register_method


@dataclass
class FinetuneConfig(MethodConfig):
    pass


class Finetune(AdaptationMethod):
    description = "TransferGAN: fine-tune all weights of G and D from the source"
    paper = "Wang et al., ECCV 2018 (arXiv:1805.01677)"


register_method("finetune", FinetuneConfig, Finetune)
