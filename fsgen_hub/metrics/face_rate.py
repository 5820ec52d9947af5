"""Face rate: the share of samples in which OpenCV's Haar frontal-face cascade finds a face (higher is better).

A semantic check that runs offline, for face targets: SWD and MS-SSIM diversity reward texture (a
checkered blob can beat a face on both), a face detector does not. The cascade
(``haarcascade_frontalface_default.xml``) ships inside the ``opencv-python-headless`` wheel, so nothing
is downloaded. Each image gets a mid-grey border of ``PAD_FRACTION`` of its side on every side, is converted to
grayscale and upscaled (bicubic) to ``DETECT_SIZE`` px before detection, so 16-64 px samples and 256 px photos
meet the same detector settings. Why the border: the cascade was trained on faces with some margin, and tightly
aligned crops (our faces64 source data, UTKFace) whose face fills the frame are missed: 256 real faces64 images
score 0.54 without it, 0.93 with it; CUFS sketches score 1.00 either way and 20 ten-shot house images 0.00 / 0.05.

Detector settings, chosen once on real images (CUFS, faces64, the ten-shot sets) and never tuned per run:
``scaleFactor=1.1`` (OpenCV's default), ``minNeighbors=5`` and ``minSize`` = a quarter of the padded image's
side (64 px at 256): a face must fill a fair part of the frame, as in an aligned face data set, so small
detections in textured backgrounds do not count (with 3 neighbours and 32 px, 4 of the 20 house images "had"
a face). The rate of the reference images, at the samples' resolution, goes into the details: the ceiling.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from fsgen_hub.metrics.registry import MetricResult, register_metric

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_SIZE = 256
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_SIZE = DETECT_SIZE // 4
PAD_FRACTION = 1 / 8


def _cv2():
    from fsgen_hub.utils.extras import require

    return require("cv2", "the face_rate metric")


@lru_cache(maxsize=1)
def _detector():
    cv2 = _cv2()
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if detector.empty():  # a broken opencv install: the XML is missing or unreadable
        raise RuntimeError(f"OpenCV could not load {cv2.data.haarcascades + CASCADE}: reinstall opencv-python-headless")
    return detector


def has_face(images: torch.Tensor) -> list[bool]:
    """For each image in [0, 1] (N, C, H, W): whether the cascade finds at least one face."""
    cv2 = _cv2()
    detector = _detector()
    images = images.detach().float().cpu().clamp(0, 1)
    border = round(images.shape[-1] * PAD_FRACTION)
    images = torch.nn.functional.pad(images, (border, border, border, border), value=0.5)
    pixels = (images * 255).round().to(torch.uint8)
    found = []
    for image in pixels:
        array = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        gray = array[:, :, 0] if array.shape[2] == 1 else cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
        gray = cv2.resize(gray, (DETECT_SIZE, DETECT_SIZE), interpolation=cv2.INTER_CUBIC)
        faces = detector.detectMultiScale(gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS,
                                          minSize=(MIN_SIZE, MIN_SIZE))
        found.append(len(faces) > 0)
    return found


def rate(images: torch.Tensor) -> float:
    found = has_face(images)
    return sum(found) / len(found) if found else 0.0


def face_rate(fake: torch.Tensor, reference: torch.Tensor | None = None, shots=None) -> MetricResult:
    details = {"faces_found": int(sum(has_face(fake)))}
    value = details["faces_found"] / len(fake)
    if reference is not None and len(reference):
        details["reference_face_rate"] = rate(reference)
    return MetricResult("face_rate", value,
                        protocol={"feature_extractor": f"opencv {_cv2().__version__} {CASCADE}", "detect_size": DETECT_SIZE,
                                  "pad_fraction": PAD_FRACTION, "scale_factor": SCALE_FACTOR, "min_neighbors": MIN_NEIGHBORS,
                                  "min_size": MIN_SIZE},
                        details=details)


register_metric("face_rate", face_rate, 256,
                "share of samples with a frontal face found by OpenCV's Haar cascade (needs opencv-python-headless)")
