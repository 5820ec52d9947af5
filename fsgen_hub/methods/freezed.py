"""FreezeD (Mo, Cho & Shin, "Freeze the Discriminator: a Simple Baseline for Fine-Tuning GANs", 2020).

The discriminator's lower blocks (input side) keep the source weights; only its upper blocks and the
whole generator are fine-tuned. Blocks are counted from the image input: DCGAN's strided convs (with
their batch norm), StyleGAN2's fromRGB, then each ResBlock, then final_conv, final_linear. The paper
freezes the lower half of the blocks of its StyleGAN/SNGAN discriminators; our default of 2 is the
fromRGB + first block for StyleGAN2 and the first two of four convs for the 64 px DCGAN.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fsgen_hub.errors import FsgenError
from fsgen_hub.methods.base import AdaptationMethod, MethodConfig, register_method


@dataclass
class FreezeDConfig(MethodConfig):
    frozen_blocks: int = field(default=2, metadata={"help": "number of discriminator blocks, from the input, kept frozen"})


class FreezeD(AdaptationMethod):
    description = "fine-tune G and the upper discriminator blocks; the lower D blocks stay frozen"
    paper = "Mo et al., CVPR Workshops 2020 (arXiv:2002.10964)"

    def prepare(self, ctx) -> None:
        if ctx.D is None:
            raise FsgenError("freezed needs a discriminator")
        blocks = ctx.unwrap(ctx.D).blocks()
        k = self.config.frozen_blocks
        if not 0 <= k < len(blocks):
            raise FsgenError(f"--method-option frozen_blocks={k}: this discriminator has {len(blocks)} blocks; use 0..{len(blocks) - 1}")
        self.frozen_names = [name for block in blocks[:k] for name, _ in block]
        for block in blocks[:k]:
            for _, param in block:
                param.requires_grad_(False)


register_method("freezed", FreezeDConfig, FreezeD)
