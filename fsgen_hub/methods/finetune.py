"""TransferGAN fine-tuning: every generator and discriminator weight is trained from the source.

Wang et al., "Transferring GANs: generating images from limited data", ECCV 2018.
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
