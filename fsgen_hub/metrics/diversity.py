"""MS-SSIM diversity: mean (1 - MS-SSIM) over random pairs of generated images (higher = more diverse).

torchmetrics' MS-SSIM needs size > (kernel - 1) * 2^(scales - 1): at 16-64 px we use a 7x7 Gaussian
kernel and as many of the 5 standard scales as fit, with the standard betas renormalised; the
protocol records both.
"""
from __future__ import annotations

import torch

from fsgen_hub.metrics.registry import MetricResult, register_metric

BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def msssim_diversity(fake: torch.Tensor, reference=None, shots=None, pairs: int = 500, seed: int = 0, kernel: int = 7) -> MetricResult:
    from fsgen_hub.utils.extras import require

    ms_ssim = require("torchmetrics.functional.image", "the msssim_diversity metric") \
        .multiscale_structural_similarity_index_measure

    size = fake.shape[-1]
    scales = max(1, min(5, next(s for s in range(5, 0, -1) if size > (kernel - 1) * 2 ** (s - 1))))
    betas = tuple(b / sum(BETAS[:scales]) for b in BETAS[:scales])
    gen = torch.Generator().manual_seed(seed)
    n = len(fake)
    i = torch.randint(0, n, (pairs,), generator=gen)
    j = (i + torch.randint(1, n, (pairs,), generator=gen)) % n
    values = []
    for start in range(0, pairs, 100):
        a, b = fake[i[start:start + 100]].float(), fake[j[start:start + 100]].float()
        values.append(ms_ssim(a, b, data_range=1.0, kernel_size=kernel, betas=betas, reduction="none"))
    sim = torch.cat(values).clamp(0, 1)
    return MetricResult("msssim_diversity", float((1 - sim).mean()),
                        protocol={"feature_extractor": None, "pairs": pairs, "kernel": kernel, "scales": scales, "betas": betas})


register_metric("msssim_diversity", msssim_diversity, 1000, "1 - MS-SSIM between random sample pairs (higher is more diverse)")
