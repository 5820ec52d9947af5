"""face_rate: the Haar frontal-face cascade finds faces in real sketches, none in noise or flat grey."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fsgen_hub.metrics.base import evaluate
from fsgen_hub.metrics.face_rate import face_rate, has_face, rate
from fsgen_hub.utils.extras import MissingDependencyError

pytest.importorskip("cv2", reason="face_rate needs opencv-python-headless (the [metrics] extra)")


def _images(folder, resolution: int, count: int | None = None, shots: int | None = None) -> torch.Tensor:
    from fsgen_hub.data import load_images

    images = (load_images(folder, resolution, shots=shots)[0] + 1) / 2
    return images[:count] if count else images


def test_real_cufs_sketches_are_faces_at_64_px(shared_dir):
    sketches = _images(shared_dir / "data" / "cufs_sketches", 64, count=30)
    assert rate(sketches) >= 0.95


def test_noise_and_flat_grey_are_not_faces():
    noise = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    grey = torch.full((2, 3, 64, 64), 0.5)
    assert has_face(torch.cat([noise, grey])) == [False] * 10
    result = face_rate(noise, reference=grey)
    assert result.value == 0.0 and result.details == {"faces_found": 0, "reference_face_rate": 0.0}


def test_the_rate_counts_each_image(shared_dir):
    """A set of faces and non-faces scores the share of faces, with the reference rate alongside."""
    sketches = _images(shared_dir / "data" / "cufs_sketches", 64, count=6)
    assert has_face(sketches) == [True] * 6
    mixed = torch.cat([sketches[:3], torch.full((3, 3, 64, 64), 0.5)])
    result = face_rate(mixed, reference=sketches)
    assert result.value == pytest.approx(0.5) and result.details["reference_face_rate"] == 1.0


def test_face_rate_through_evaluate(tiny_dcgan):
    G, _ = tiny_dcgan
    (result,) = evaluate(G, torch.full((4, 3, 16, 16), 0.0), ["face_rate"], num_samples=8)
    assert result.metric == "face_rate" and 0.0 <= result.value <= 1.0
    assert result.protocol["num_samples"] == 8 and result.protocol["resolution"] == 16
    assert result.protocol["min_size"] == 64 and result.details["reference_face_rate"] == 0.0


def test_missing_opencv_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError(name="cv2")
    with pytest.raises(MissingDependencyError) as info:
        rate(torch.rand(1, 3, 16, 16))
    message = str(info.value)
    assert "\n" not in message and "fsgen_hub[metrics]" in message and "opencv-python-headless" in message


@pytest.mark.parametrize("domain", ["sketches", "babies"])
def test_print_the_ten_shot_rates_at_256_and_64_px(shared_dir, domain, capsys):
    """Calibration, printed not asserted: what real target images score, at full size and at our 64 px."""
    shots = _images(shared_dir / "data" / "tenshot" / domain, 256)
    at_64 = F.interpolate(shots, size=64, mode="area")
    with capsys.disabled():
        print(f"\n{domain}: {len(shots)} shots, face rate at 256 px {rate(shots):.2f}, at 64 px {rate(at_64):.2f}")
    assert len(shots) == 10


def test_tightly_cropped_real_faces_are_found(shared_dir):
    """faces64 (UTKFace) crops fill the frame; without the grey border the cascade missed ~half of them."""
    faces = _images(shared_dir / "data" / "faces64", 64, shots=48)
    assert rate(faces) >= 0.85


def test_the_runs_script_rates_the_samples_as_evaluate_draws_them(tmp_path, monkeypatch, capsys):
    # G.sample gives images in [0, 1]: the script once remapped them again ((x + 1) / 2), washing out every
    # sample to [0.5, 1] and under-counting faces
    from helpers import save_tiny_dcgan_source

    from fsgen_hub import AutoGenerator
    from fsgen_hub.metrics import face_rate as face_rate_module
    from fsgen_hub.metrics.base import generate

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import face_rate_of_runs

    folder = save_tiny_dcgan_source(tmp_path / "model")
    seen = []
    monkeypatch.setattr(face_rate_module, "rate", lambda images: seen.append(images) or 0.25)
    assert face_rate_of_runs.main([str(folder), "--num", "6", "--seed", "3"]) == 0
    G = AutoGenerator.from_pretrained(folder)
    assert torch.equal(seen[0], generate(G, 6, 3, batch_size=64, device=G.device))
    assert f"| {folder} | 0.250 |" in capsys.readouterr().out
