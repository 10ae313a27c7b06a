"""The Hopfield network: Hebb's rule, the energy, recall, capacity, spurious states, and its runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ai_scratch.cli import main
from ai_scratch.experiment import Claim
from ai_scratch.foundations.hopfield import Hopfield, HopfieldLearner, capacity_sweep, mixture_state, overlap
from conftest import config
from datamodules import PatternsDataModule
from datamodules.patterns import LETTER_ORDER, letter_patterns, random_patterns
from wandb_log import find_runs, read_run

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
FIGURES = {"hopfield_recall", "hopfield_energy", "hopfield_capacity", "hopfield_spurious_state"}


def stored(count: int, seed: int, n_units: int = 100) -> tuple[np.ndarray, HopfieldLearner]:
    patterns = random_patterns(count, n_units, np.random.default_rng(seed))
    learner = HopfieldLearner(n_units, seed=seed)
    learner.train_batch(patterns)
    return patterns, learner


# ---------------------------------------------------------------------------------------- storage
def test_hebbian_storage_is_the_papers_rule_in_any_number_of_batches() -> None:
    patterns, learner = stored(7, seed=0)
    expected = patterns.T.astype(np.float64) @ patterns / 100  # W = (1/N) sum_mu xi xi^T ...
    np.fill_diagonal(expected, 0.0)  # ... with W_ii = 0
    np.testing.assert_allclose(learner.weight, expected, atol=1e-6)
    assert np.array_equal(learner.weight, learner.weight.T) and learner.patterns_stored == 7
    in_parts = HopfieldLearner(100)
    for part in (patterns[:3], patterns[3:4], patterns[4:]):  # shards, batches: the sum does not care
        in_parts.train_batch(part)
    np.testing.assert_allclose(in_parts.weight, learner.weight, atol=1e-6)
    assert in_parts.patterns_stored == 7
    with pytest.raises(ValueError, match="-1 and \\+1"):
        learner.train_batch(np.full((1, 100), 0.5))


def test_a_stored_pattern_and_its_reverse_are_fixed_points_and_a_tie_keeps_the_state() -> None:
    patterns, learner = stored(5, seed=1)
    assert learner.is_fixed_point(patterns).all() and learner.is_fixed_point(-patterns).all()
    result = learner.recall(patterns)
    assert np.array_equal(result.states, patterns) and (result.sweeps == 1).all() and result.converged.all()
    empty = HopfieldLearner(100)  # W = 0: every field is a tie, so nothing moves
    cue = patterns[:2]
    result = empty.recall(cue)
    assert np.array_equal(result.states, cue) and (result.sweeps == 1).all()


def test_the_update_order_comes_from_the_seeded_generator() -> None:
    patterns, _ = stored(25, seed=2)
    cues = -patterns[:, ::-1].copy()
    runs = []
    for _ in range(2):
        learner = HopfieldLearner(100, seed=3)
        learner.train_batch(patterns)
        runs.append(learner.recall(cues).states)
    assert np.array_equal(runs[0], runs[1])
    before = learner.rng.bit_generator.state
    learner.recall(cues, rng=np.random.default_rng(0))  # a side recall leaves the learner's stream alone
    assert learner.rng.bit_generator.state == before


# ---------------------------------------------------------------------------------------- energy
@pytest.mark.parametrize("count", [5, 25])
def test_energy_never_rises_during_asynchronous_recall(count: int) -> None:
    """Recorded after every single-unit update, and recomputed as -1/2 s^T W s from the states."""
    patterns, learner = stored(count, seed=4)
    cues = np.where(np.random.default_rng(5).random((20, 100)) < 0.3, -1.0, 1.0) * np.repeat(patterns, 20, axis=0)[:20]
    result = learner.recall(cues, record=True, snapshot_every=1)
    assert result.converged.all()
    assert np.all(np.diff(result.energies, axis=1) <= 1e-9)
    direct = np.stack([learner.energy(states) for states in result.snapshots], axis=1)
    np.testing.assert_allclose(direct, result.energies, atol=1e-6)
    assert np.all(result.energies[:, -1] < result.energies[:, 0])  # the noisy cues went downhill
    # recall ends at a fixed point: a local minimum of E, no single flip lowers it further
    assert learner.is_fixed_point(result.states).all()


# ---------------------------------------------------------------------------------------- the claims
def recall_like_the_config(name: str, seed: int) -> dict[str, float]:
    """The experiment with the NumPy learner alone: same data, one pass of storage, recall of val."""
    cfg = yaml.safe_load(Path(config(name)).read_text())
    data = PatternsDataModule(**{**cfg["data"]["init_args"], "seed": seed})
    learner = HopfieldLearner(cfg["model"]["init_args"]["n_units"], seed=seed)
    learner.train_batch(data.arrays("train")[0])
    cues, patterns = data.arrays("val")
    final = overlap(learner.recall(cues).states, patterns)
    return {"val_recall_accuracy": float(np.mean(final >= 0.99)), "val_overlap": float(final.mean())}


@pytest.mark.parametrize("name", ["hopfield/recall_strength", "hopfield/letters_strength", "hopfield/capacity_weakness"])
def test_claim_holds_for_ten_data_seeds(name: str) -> None:
    claim = Claim(**yaml.safe_load(Path(config(name)).read_text())["experiment"]["claim"])
    results = [recall_like_the_config(name, seed) for seed in range(10)]
    assert all(claim.holds(r[claim.metric]) for r in results), results
    if "strength" in name:  # recalled means the whole pattern back: overlap 1 on every seed
        assert min(r["val_overlap"] for r in results) >= 0.99, results
    else:  # far from it: recall leaves the cues further from their patterns than they started (0.8)
        assert max(r["val_overlap"] for r in results) < 0.8, results


def test_capacity_recall_collapses_past_about_0_14_n() -> None:
    """Measured (10 seeds, N = 100): recalled 1.0 at 0.05, 0.95 at 0.1, 0.70 at 0.14, 0.25 at 0.2,
    0.05 at 0.25, 0.01 at 0.3. A network this small spreads the transition; 0.138 is the large-N limit."""
    sweep = capacity_sweep([0.05, 0.1, 0.2, 0.3], n_units=100, seeds=5)
    accuracy = sweep["recall_accuracy"].mean(axis=1)
    assert sweep["recall_accuracy"][0].min() >= 0.95  # few patterns: every set recalled
    assert accuracy[1] >= 0.8
    assert accuracy[2] <= 0.5 and accuracy[3] <= 0.1  # well past 0.138: collapsed
    assert sweep["overlap"][3].mean() < 0.8  # worse than the cues themselves


def test_a_mixture_of_three_patterns_is_a_spurious_fixed_point() -> None:
    """sign(xi1 + xi2 + xi3) is stable, overlaps each pattern by about 1/2, is none of them, and lies
    higher in energy. Measured at N = 100: a fixed point for 199 of 200 sets of three patterns, and
    for 18 of 20 with two more patterns stored (P = 5, the strength experiment's load)."""
    for seed in range(20):
        patterns, learner = stored(3, seed=seed)
        mixture = mixture_state(patterns)
        assert learner.is_fixed_point(mixture[None])[0], seed
        assert np.array_equal(learner.recall(mixture[None]).states[0], mixture)
        overlaps = patterns @ mixture / 100
        assert np.all((overlaps > 0.2) & (overlaps < 0.8)), (seed, overlaps)  # none of them, nor a reverse
        assert learner.energy(mixture[None])[0] > learner.energy(patterns).max()
    fixed = [stored(5, seed=seed)[1].is_fixed_point(mixture_state(stored(5, seed=seed)[0][:3])[None])[0] for seed in range(20)]
    assert sum(fixed) >= 15, fixed


# ---------------------------------------------------------------------------------------- data
def test_patterns_datamodule_splits_cues_and_seeds() -> None:
    data = PatternsDataModule(n_units=100, load=0.05, cues_per_pattern=4, seed=3)
    assert data.n_patterns == 5 and data.load == 0.05 and data.image_shape == (10, 10)
    patterns, targets = data.arrays("train")
    assert patterns.shape == (5, 100) and np.array_equal(patterns, targets) and set(np.unique(patterns)) == {-1.0, 1.0}
    for split in ("val", "test"):
        cues, originals = data.arrays(split)
        assert cues.shape == (20, 100)
        assert np.all((cues != originals).sum(axis=1) == 10)  # exactly 10% of the bits flipped
        assert np.array_equal(np.unique(originals, axis=0), np.unique(patterns, axis=0))
    assert not np.array_equal(data.arrays("val")[0], data.arrays("test")[0])
    again = PatternsDataModule(n_units=100, load=0.05, cues_per_pattern=4, seed=3)
    assert np.array_equal(again.arrays("val")[0], data.arrays("val")[0])
    assert not np.array_equal(PatternsDataModule(seed=4).arrays("train")[0], patterns)
    assert PatternsDataModule(n_units=60, n_patterns=7).image_shape == (6, 10)
    with pytest.raises(ValueError, match="not both"):
        PatternsDataModule(n_patterns=5, load=0.05)
    with pytest.raises(ValueError, match="10x10"):
        PatternsDataModule(n_units=64, source="letters")


def test_letters_are_readable_patterns_and_the_first_five_store_well() -> None:
    letters = letter_patterns(len(LETTER_ORDER))
    assert letters.shape == (12, 100)
    first_five = letters[:5].astype(np.float64) @ letters[:5].T / 100
    assert np.abs(first_five - np.eye(5)).max() <= 0.2
    learner = HopfieldLearner(100)
    learner.train_batch(letters[:5])
    assert learner.is_fixed_point(letters[:5]).all()


# ---------------------------------------------------------------------------------------- Lightning
def test_figures_are_hopfields_own_four() -> None:
    figures = Hopfield().figures(every_n_epochs=3)
    assert {figure.name for figure in figures} == FIGURES and all(figure.every_n_epochs == 3 for figure in figures)


def test_model_info_and_checkpoint_state() -> None:
    model = Hopfield(n_units=100)
    info = model.model_info()
    assert info["parameter_count"] == 100 * 100 and info["input_size"] == [100]  # what the built model knows
    patterns, _ = stored(5, seed=6)
    model.learner.train_batch(patterns)
    model.learner.rng.random()
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    other = Hopfield(n_units=100)
    other.on_load_checkpoint(checkpoint)
    assert np.array_equal(other.learner.weight, model.learner.weight) and other.learner.patterns_stored == 5
    assert other.learner.rng.bit_generator.state == model.learner.rng.bit_generator.state
    assert np.array_equal(other.learned["weight"].detach().numpy(), model.learner.weight)
    recalled = other.predict_step((torch.from_numpy(patterns).float(),), 0)  # predict: the recalled states
    assert np.array_equal(recalled.numpy(), patterns)


@pytest.mark.parametrize("name", ["hopfield/letters_strength", "hopfield/capacity_weakness"])
def test_claim_reproduced_by_the_cli(workdir: Path, name: str) -> None:
    cli = main(["fit", "--config", config(name), *QUIET, "--figures", "false"])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()
    assert cli.trainer.global_step == 1 and cli.trainer.current_epoch == 1  # storage: one step, one epoch


def test_wandb_record_of_a_run_and_recall_from_its_checkpoint(wandb_offline: Path, workdir: Path) -> None:
    cli = main(["fit", "--config", config("hopfield/recall_strength"), "--wandb", *QUIET])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()
    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)

    assert log.project == "ai-from-scratch-hopfield" and log.name == "recall_strength"
    assert log.group == "hopfield-strengths" and log.job_type == "fit"
    for tag in ("hopfield", "module-1", "foundation", "numpy", "recall_strength", "strength", "synthetic"):
        assert tag in log.tags, (tag, log.tags)
    info = log.config["model_info"]
    assert info["name"] == "hopfield" and info["year_introduced"] == 1982 and info["parameter_count"] == 10_000
    assert log.config["experiment"]["claim"]["metric"] == "val_recall_accuracy"
    assert log.config["cli"]["model"]["class_path"] == "ai_scratch.foundations.hopfield.Hopfield"

    row = next(row for row in log.history if "val_recall_accuracy" in row)
    assert row["val_recall_accuracy"] == 1.0 and row["val_overlap"] == 1.0
    assert abs(row["val_cue_overlap"] - 0.8) < 1e-6 and -51 < row["val_energy"] < -48  # about -N/2
    stored_row = next(row for row in log.history if "train_patterns_stored" in row)
    assert stored_row["train_patterns_stored"] == 5 and abs(stored_row["train_load"] - 0.05) < 1e-6
    assert "train_energy" in stored_row and "learning_rate" not in log.history_keys  # Hebb has no step size

    images = {key.split("/")[1] for key in log.history_keys if key.startswith("figures/") and key.endswith("/_type")}
    assert FIGURES == images, images  # Hopfield's own figures only: the generic classifier figures say nothing here
    assert log.summary["claim/reproduced"] is True and log.exit_code == 0
    assert {p.stem for p in (Path(cli.log_dir) / "figures").glob("*.png")} == FIGURES

    # the checkpoint carries the weights: recall on the held-out cues from it alone
    tested = main(["test", "--config", config("hopfield/recall_strength"), "--ckpt_path", str(Path(cli.log_dir) / "checkpoints" / "last.ckpt"), *QUIET])
    assert tested.trainer.callback_metrics["test_recall_accuracy"] == 1.0


def test_paper_sized_is_hopfields_hundred_units() -> None:
    """N = 100: W is N x N (symmetric, zero diagonal, N(N - 1)/2 free weights); one update of every
    unit, h = W s, costs what torch's counter counts for that product."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = Hopfield.paper_sized()
    assert sum(p.numel() for p in model.parameters()) == 100 * 100
    assert tuple(model.example_input_array.shape) == (1, 100)
    counter = FlopCounterMode(display=False)
    with counter:
        torch.empty(1, 100, device="meta") @ torch.empty(100, 100, device="meta")
    assert model.forward_flops() == counter.get_total_flops() == 2 * 100 * 100
