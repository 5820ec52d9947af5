"""FreezeD (Mo, Cho & Shin, "Freeze the Discriminator: a Simple Baseline for Fine-Tuning GANs", 2020).

The discriminator's lower blocks (input side) keep the source weights; only its upper blocks and the
whole generator are fine-tuned. Blocks are counted from the image input (``D.blocks()``): DCGAN's strided
convs (with their batch norm), StyleGAN2's fromRGB, then each ResBlock, then final_conv, final_linear.

As the official code runs it (github.com/sangwoomo/FreezeD ``stylegan/finetune.py``, README command
``--freeze_D --feature_loc 3``): D trains only its last ``feature_loc`` = 3 progression blocks (the 4x4
one included) and the output linear; fromRGB and every block before stay frozen. Here:
``trained_blocks`` = 3 blocks before the output layer train (StyleGAN2: final_conv and the last two
ResBlocks, with final_linear; DCGAN: the last three convs with the logit conv). ``frozen_blocks`` counts
from the input instead and wins when given. Recipe (``fsgen_hub.methods.recipes``): batch 8, R1 γ 10 on
every step, style mixing 0.9, no path-length regularisation, EMA decay 0.999, no augmentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fsgen_hub.methods.base import AdaptationMethod, MethodConfig, register_method
from fsgen_hub.utils.errors import FsgenError


@dataclass
class FreezeDConfig(MethodConfig):
    trained_blocks: int = field(default=3, metadata={"help": "discriminator blocks trained before the output layer (FreezeD's feature_loc 3)"})
    frozen_blocks: int | None = field(default=None, metadata={"help": "number of D blocks, from the input, kept frozen (overrides trained_blocks)"})


class FreezeD(AdaptationMethod):
    description = "fine-tune G and the upper discriminator blocks; the lower D blocks stay frozen"
    paper = "Mo et al., CVPR Workshops 2020 (arXiv:2002.10964)"

    def prepare(self, ctx) -> None:
        if ctx.D is None:
            raise FsgenError("freezed needs a discriminator")
        blocks = ctx.unwrap(ctx.D).blocks()
        k = self.config.frozen_blocks
        if k is None:
            k = max(0, len(blocks) - 1 - self.config.trained_blocks)
        if not 0 <= k < len(blocks):
            raise FsgenError(f"--method-option frozen_blocks={k}: this discriminator has {len(blocks)} blocks; use 0..{len(blocks) - 1}")
        self.frozen_names = [name for block in blocks[:k] for name, _ in block]
        for block in blocks[:k]:
            for _, param in block:
                param.requires_grad_(False)


register_method("freezed", FreezeDConfig, FreezeD)
