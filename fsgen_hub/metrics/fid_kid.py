"""FID and KID with the standard TF-ported Inception (``pt_inception-2015-12-05``) via torchmetrics.

torchmetrics wraps torch-fidelity's feature extractor, the one pytorch-fid and torch-fidelity use;
scores from other extractors are not comparable, so results name the extractor and the weights'
sha256. The weights are not downloaded here: give a path (``--inception-weights`` or
``FSGEN_INCEPTION_WEIGHTS``) or place the file in torch's hub cache.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from fsgen_hub.metrics.registry import MetricResult, register_metric
from fsgen_hub.utils.errors import MissingWeightsError
from fsgen_hub.utils.extras import require

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
EXTRACTOR = "torch-fidelity inception-v3-compat (pt_inception-2015-12-05), pool3 2048-d"


def inception_weights_path(path: str | None = None) -> Path:
    candidates = [path, os.environ.get("FSGEN_INCEPTION_WEIGHTS"),
                  str(Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise MissingWeightsError(
        f"FID/KID need the Inception weights {INCEPTION_FILE} (from {INCEPTION_URL}); none found: "
        f"set FSGEN_INCEPTION_WEIGHTS=/path/{INCEPTION_FILE} or pass --inception-weights"
    )


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    _compute_fid = require("torchmetrics.image.fid", "FID")._compute_fid

    return float(_compute_fid(mu1.double(), sigma1.double(), mu2.double(), sigma2.double()))


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def kid_from_features(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """Unbiased polynomial-kernel MMD^2 averaged over random subsets (subset size capped by both sets)."""
    poly_mmd = require("torchmetrics.image.kid", "KID").poly_mmd

    size = min(subset_size, len(real), len(fake))
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=gen)[:size]].double()
        f = fake[torch.randperm(len(fake), generator=gen)[:size]].double()
        values.append(poly_mmd(r, f))
    values = torch.stack(values)
    return float(values.mean()), float(values.std()), size


def inception_features(images: torch.Tensor, weights: str | None = None, batch_size: int = 64, extractor=None) -> torch.Tensor:
    """2048-d pool features of images in [0, 1]; ``extractor`` replaces Inception (tests)."""
    if extractor is None:
        require("torch_fidelity", "FID/KID (the Inception feature extractor)")
        NoTrainInceptionV3 = require("torchmetrics.image.fid", "FID/KID").NoTrainInceptionV3

        extractor = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                       feature_extractor_weights_path=str(inception_weights_path(weights)))
    feats = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = (images[start:start + batch_size].clamp(0, 1) * 255).round().to(torch.uint8)
            feats.append(extractor(batch).reshape(len(batch), -1).double().cpu())
    return torch.cat(feats)


_REF_CACHE: dict[str, torch.Tensor] = {}


def _reference_features(reference: torch.Tensor, weights, extractor) -> torch.Tensor:
    """Reference features cached on disk under a hash of the images + extractor, written atomically."""
    from fsgen_hub.utils.io import atomic_path

    h = hashlib.sha256(reference.numpy().tobytes())
    h.update((str(weights) if extractor is None else repr(extractor)).encode())
    key = h.hexdigest()[:24]
    if key in _REF_CACHE:
        return _REF_CACHE[key]
    cache = Path(os.environ.get("FSGEN_HOME", Path.home() / ".cache" / "fsgen_hub")) / "metric_stats" / f"inception-{key}.pt"
    if extractor is None and cache.is_file():
        feats = torch.load(cache, weights_only=True)
    else:
        feats = inception_features(reference, weights, extractor=extractor)
        if extractor is None:
            with atomic_path(cache) as tmp:
                torch.save(feats, tmp)
    _REF_CACHE[key] = feats
    return feats


def _weights_record(weights, extractor) -> dict:
    if extractor is not None:
        return {"feature_extractor": f"custom:{type(extractor).__name__} (not comparable)", "weights_sha256": None}
    path = inception_weights_path(weights)
    return {"feature_extractor": EXTRACTOR, "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def fid(fake, reference, shots=None, inception_weights=None, feature_extractor=None, **_) -> MetricResult:
    record = _weights_record(inception_weights, feature_extractor)
    real_f = _reference_features(reference, inception_weights, feature_extractor)
    fake_f = inception_features(fake, inception_weights, extractor=feature_extractor)
    value = frechet_distance(*gaussian_stats(fake_f), *gaussian_stats(real_f))
    return MetricResult("fid", value, protocol=record)


def kid(fake, reference, shots=None, inception_weights=None, feature_extractor=None, **_) -> MetricResult:
    record = _weights_record(inception_weights, feature_extractor)
    real_f = _reference_features(reference, inception_weights, feature_extractor)
    fake_f = inception_features(fake, inception_weights, extractor=feature_extractor)
    mean, std, size = kid_from_features(real_f, fake_f)
    return MetricResult("kid", mean, protocol={**record, "subset_size": size, "subsets": 100}, details={"std": std})


def _check_weights(inception_weights=None, feature_extractor=None, **_) -> None:
    if feature_extractor is None:
        inception_weights_path(inception_weights)


register_metric("fid5k", fid, 5000, "Fréchet Inception distance, 5k samples vs the full reference set", needs_weights=True,
                check=_check_weights)
register_metric("kid5k", kid, 5000, "kernel Inception distance (unbiased MMD^2), 5k samples", needs_weights=True,
                check=_check_weights)
