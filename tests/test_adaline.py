"""ADALINE: the LMS rule on the linear output, least squares, 2 / lambda_max, and its runs."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from ai_scratch.cli import main
from ai_scratch.experiment import Claim
from ai_scratch.foundations.adaline import Adaline, AdalineLearner
from ai_scratch.foundations.adaline_figures import AdalineVsPerceptron, LeastSquaresConvergence
from ai_scratch.foundations.perceptron import PerceptronLearner
from conftest import config, quiet_trainer
from datamodules import ToyDataModule
from wandb_log import find_runs, read_run

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
NO_FIGURES = [*QUIET, "--figures", "false"]
SEEDS = range(10)


def augmented(x: np.ndarray) -> np.ndarray:
    """(x, 1) in float64: the bias as the weight of a constant input, computed here independently."""
    return np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))])


def signs(y: np.ndarray) -> np.ndarray:
    return np.where(y == 1, 1.0, -1.0)


def lstsq_weights(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """w~* = (w*, b*) by numpy.linalg.lstsq on the augmented inputs and the +-1 targets."""
    return np.linalg.lstsq(augmented(x), signs(y), rcond=None)[0]


def own_weights(learner: AdalineLearner) -> np.ndarray:
    return np.concatenate([learner.weight, learner.bias]).astype(np.float64)


def relative_distance(w: np.ndarray, w_star: np.ndarray) -> float:
    return float(np.linalg.norm(w - w_star) / np.linalg.norm(w_star))


# ---------------------------------------------------------------------------------------- the rule
def test_the_rule_learns_from_the_linear_output_where_the_perceptron_does_not_move() -> None:
    """A correctly classified sample with s = 0.3 still teaches LMS: w~ += eta (t - s) x~, exactly."""
    x, y = np.array([[1.0, 2.0]], dtype=np.float32), np.array([1])
    adaline = AdalineLearner(input_dim=2, learning_rate=0.5)
    perceptron = PerceptronLearner(input_dim=2, learning_rate=0.5)
    for learner in (adaline, perceptron):
        learner.weight[:] = [0.1, 0.1]  # s = 0.1 + 0.2 + 0 = 0.3 >= 0: class 1, right
    seen_adaline, seen_perceptron = adaline.train_batch(x, y), perceptron.train_batch(x, y)
    np.testing.assert_allclose(seen_adaline, [0.3], rtol=1e-6)
    np.testing.assert_allclose(seen_perceptron, [0.3], rtol=1e-6)
    # LMS: e = 1 - 0.3 = 0.7; w += 0.5 * 0.7 * (1, 2) = (0.35, 0.7); b += 0.35
    np.testing.assert_allclose(adaline.weight, [0.45, 0.8], rtol=1e-6)
    np.testing.assert_allclose(adaline.bias, [0.35], rtol=1e-6)
    # Rosenblatt: no mistake, no update
    np.testing.assert_array_equal(perceptron.weight, np.array([0.1, 0.1], dtype=np.float32))
    np.testing.assert_array_equal(perceptron.bias, [0.0])

    # an overshoot is pushed back, though the answer is right: s = 3, e = 1 - 3 = -2
    overshoot = AdalineLearner(input_dim=2, learning_rate=0.25)
    overshoot.weight[:] = [1.0, 1.0]
    overshoot.train_batch(x, y)
    np.testing.assert_allclose(overshoot.weight, [1.0 - 0.5, 1.0 - 1.0], atol=1e-7)
    np.testing.assert_allclose(overshoot.bias, [-0.5], atol=1e-7)
    assert overshoot.loss(np.array([3.0]), y) == 4.0  # the MSE of the linear output, (t - s)^2


def test_online_rule_matches_a_float64_reference_and_batch_mode_is_one_gradient_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = (rng.random(50) < 0.5).astype(np.int64)
    online = AdalineLearner(input_dim=3, learning_rate=0.05)
    seen = online.train_batch(x, y)
    w, reference_seen = np.zeros(4), []
    for xi, ti in zip(augmented(x), signs(y)):  # the Widrow-Hoff rule, sample by sample
        s = xi @ w
        reference_seen.append(s)
        w = w + 0.05 * (ti - s) * xi
    np.testing.assert_allclose(seen, reference_seen, atol=1e-5)
    np.testing.assert_allclose(own_weights(online), w, atol=1e-5)

    batch = AdalineLearner(input_dim=3, learning_rate=0.05, mode="batch")
    batch.weight[:] = [0.2, -0.1, 0.3]
    start = own_weights(batch)
    seen = batch.train_batch(x, y)
    error = signs(y) - augmented(x) @ start  # all samples scored before the step
    np.testing.assert_allclose(seen, augmented(x) @ start, atol=1e-5)
    np.testing.assert_allclose(own_weights(batch), start + 0.05 * augmented(x).T @ error / 50, atol=1e-6)
    gradient = batch.gradients()  # of J = mean e^2, at the weights before the step
    np.testing.assert_allclose(gradient["weight"], -2 * x.astype(np.float64).T @ error / 50, atol=1e-5)
    np.testing.assert_allclose(gradient["bias"], [-2 * error.mean()], atol=1e-5)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="mode"):
        AdalineLearner(2, mode="sgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="relative_learning_rate"):
        AdalineLearner(2, relative_learning_rate=0.0)
    with pytest.raises(RuntimeError, match="observe"):  # eta relative to lambda_max needs the data
        AdalineLearner(2, relative_learning_rate=0.9).train_batch(np.zeros((1, 2), np.float32), np.array([1]))


# ---------------------------------------------------------------------------------------- regression
TRUE_WEIGHTS = np.array([2.0, -3.0, 0.5])  # (w1, w2, b) of the line the targets come from


def linear_targets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and real-valued targets d = 2 x1 - 3 x2 + 0.5 + noise of standard deviation 0.01."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    d = x.astype(np.float64) @ TRUE_WEIGHTS[:2] + TRUE_WEIGHTS[2] + rng.normal(0.0, 0.01, n)
    return x, d.astype(np.float32)


def test_real_valued_targets_are_a_regression_that_lms_solves() -> None:
    """Float targets are the desired outputs themselves: LMS finds the line they come from."""
    x, d = linear_targets(400, seed=0)
    online = AdalineLearner(input_dim=2, learning_rate=0.01)
    for _ in range(10):
        online.train_batch(x, d)
    np.testing.assert_allclose(own_weights(online), TRUE_WEIGHTS, atol=0.01)
    assert online.regression and online.loss(online.scores(x), d) < 2e-4  # the noise's variance is 1e-4

    # batch mode below 2 / lambda_max ends at numpy's least-squares fit to d itself
    batch = AdalineLearner(input_dim=2, mode="batch", relative_learning_rate=0.9)
    batch.observe(x, d)
    for _ in range(200):
        batch.train_batch(x, d)
    w_star = np.linalg.lstsq(augmented(x), d.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(batch.least_squares(), w_star, atol=1e-6)
    assert batch.lstsq_distance() < 1e-4
    assert batch.least_squares_loss() == pytest.approx(float(np.mean((d - augmented(x) @ w_star) ** 2)), rel=1e-4)

    # class labels still become the +-1 of the quantizer
    labels = (d > 0.5).astype(np.int64)
    classifier = AdalineLearner(input_dim=2, learning_rate=0.01)
    classifier.train_batch(x, labels)
    assert not classifier.regression
    assert classifier.loss(np.zeros(len(labels)), labels) == 1.0  # (t - 0)^2 with t = +-1


@pytest.mark.parametrize("labels", [[0, 1, 2, 1], [1, 2, 1, 2], [-1, 1, 1, -1]])
def test_class_labels_other_than_0_and_1_are_a_one_line_error(labels: list[int]) -> None:
    x, y = np.zeros((4, 2), dtype=np.float32), np.array(labels)
    for call in (AdalineLearner(2).train_batch, AdalineLearner(2).observe, lambda x, y: AdalineLearner(2).loss(np.zeros(4), y)):
        with pytest.raises(ValueError, match="separates two classes, labelled 0 and 1") as error:
            call(x, y)
        assert "\n" not in str(error.value) and "real-valued" in str(error.value)


def test_a_lightning_fit_on_real_valued_targets_learns_the_line_and_logs_no_accuracy(tmp_path: Path) -> None:
    x, d = linear_targets(400, seed=1)
    x_val, d_val = linear_targets(100, seed=2)
    train = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(d)), batch_size=50, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(torch.from_numpy(x_val), torch.from_numpy(d_val)), batch_size=100)

    def trainer() -> L.Trainer:
        return quiet_trainer(max_epochs=10, devices=1, logger=CSVLogger(tmp_path))

    model = Adaline(input_dim=2, learning_rate=0.01)
    fit = trainer()
    fit.fit(model, train, val)
    np.testing.assert_allclose(own_weights(model.learner), TRUE_WEIGHTS, atol=0.01)
    metrics = fit.callback_metrics
    assert metrics["val_loss"] < 2e-4 and metrics["train_loss"] < 2e-4 and metrics["train_lstsq_distance"] < 0.01
    assert not [key for key in metrics if "accuracy" in key], list(metrics)
    rows = logged_rows(fit.log_dir)
    assert sum("val_loss" in row for row in rows) == 10 and not any("accuracy" in key for row in rows for key in row)
    predicted = torch.cat(fit.predict(model, val))  # the linear output itself, not a class
    np.testing.assert_allclose(predicted.numpy(), d_val, atol=0.05)

    with pytest.raises(ValueError, match="compare_perceptron needs class labels"):
        trainer().fit(Adaline(input_dim=2, compare_perceptron=True), train, val)


# ---------------------------------------------------------------------------------------- like the configs
def train_epochs(data: ToyDataModule, epochs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The training split as each epoch's one whole batch, in the train loader's order.

    The configs leave batch_size unset (the whole split, one batch); the order is the sampler's,
    a function of (seed, epoch): read from it directly, without a DataLoader per epoch.
    """
    x, y = data.arrays("train")
    sampler = data.train_dataloader().sampler
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = np.array(list(sampler))
        yield x[order], y[order]


def test_train_epochs_replays_the_train_loader() -> None:
    data = ToyDataModule(dataset="blobs", n_samples=100, noise=1.0, seed=3)
    loader = data.train_dataloader()
    for epoch, (x, y) in enumerate(train_epochs(data, 3)):
        loader.sampler.set_epoch(epoch)
        (inputs, targets), = list(loader)  # one batch: the whole split
        np.testing.assert_array_equal(inputs.numpy(), x)
        np.testing.assert_array_equal(targets.numpy(), y)


def run_like_the_config(name: str, seed: int, **changes: Any) -> dict[str, Any]:
    """The experiment with the NumPy learners alone: same data, order, epochs and arguments."""
    cfg = yaml.safe_load(Path(config(name)).read_text())
    data = ToyDataModule(**{**cfg["data"]["init_args"], "seed": seed})
    args = {**cfg["model"]["init_args"], **changes}
    epochs = args.pop("max_epochs", cfg["trainer"]["max_epochs"])
    compare = args.pop("compare_perceptron", False)
    learner = AdalineLearner(**args)
    perceptron = PerceptronLearner(args["input_dim"]) if compare else None
    x, y = data.arrays("train")
    learner.observe(x, y)  # as Adaline.on_train_start does: R, p and a relative eta
    result: dict[str, Any] = {"learner": learner, "train": (x, y), "distances": []}
    for inputs, targets in train_epochs(data, epochs):
        scores = learner.train_batch(inputs, targets)
        result["distances"].append(relative_distance(own_weights(learner), lstsq_weights(x, y)))
        if perceptron is not None:
            perceptron_scores = perceptron.train_batch(inputs, targets)
            adaline_errors = int(((scores >= 0) != (targets == 1)).sum())
            perceptron_errors = int(((perceptron_scores >= 0) != (targets == 1)).sum())
            result["train_error_ratio"] = perceptron_errors / max(adaline_errors, 1)
    result["train_loss"] = learner.loss(scores, targets)  # MSE during the last pass
    result["train_lstsq_distance"] = result["distances"][-1]
    xv, yv = data.arrays("val")
    result["val_accuracy"] = float(((learner.scores(xv) >= 0) == (yv == 1)).mean())
    return result


def claim_of(name: str) -> Claim:
    return Claim(**yaml.safe_load(Path(config(name)).read_text())["experiment"]["claim"])


def test_lms_settles_at_the_least_squares_weights_on_noisy_linear_data() -> None:
    """Online LMS, eta = 0.002, 30 passes: within 3% of numpy.linalg.lstsq's weights on every seed.

    The config measured, over 50 data seeds, a mean of 0.008 and a highest of 0.015."""
    claim = claim_of("adaline/least_squares_strength")
    assert claim.metric == "train_lstsq_distance" and claim.comparison == "<=" and claim.value == 0.03
    distances = []
    for seed in SEEDS:
        run = run_like_the_config("adaline/least_squares_strength", seed)
        learner, (x, y) = run["learner"], run["train"]
        w_star = lstsq_weights(x, y)  # independent of the learner's own statistics
        np.testing.assert_allclose(learner.least_squares(), w_star, atol=1e-6)
        distance = relative_distance(own_weights(learner), w_star)
        assert distance == pytest.approx(learner.lstsq_distance(), rel=1e-4, abs=1e-6)
        assert run["distances"][0] > 0.5  # it did start far: one pass from zero is not the answer
        distances.append(distance)
        # and it sits at the bottom of the bowl: its MSE is within 1% of the least-squares MSE
        mse = float(np.mean((signs(y) - augmented(x) @ own_weights(learner)) ** 2))
        lstsq_mse = float(np.mean((signs(y) - augmented(x) @ w_star) ** 2))
        assert lstsq_mse <= mse <= 1.01 * lstsq_mse
        assert learner.least_squares_loss() == pytest.approx(lstsq_mse, rel=1e-6)
    assert all(claim.holds(d) for d in distances), distances


def test_iris_setosa_vs_versicolor_is_perfect_on_ten_data_seeds() -> None:
    claim = claim_of("adaline/iris_strength")
    accuracies = [run_like_the_config("adaline/iris_strength", seed)["val_accuracy"] for seed in SEEDS]
    assert accuracies == [1.0] * len(SEEDS) and all(claim.holds(a) for a in accuracies), accuracies


def test_xor_least_squares_is_the_zero_vector_and_the_mse_stays_at_one() -> None:
    claim = claim_of("adaline/xor_weakness")
    for seed in SEEDS:
        run = run_like_the_config("adaline/xor_weakness", seed)
        x, y = run["train"]
        w_star = lstsq_weights(x, y)
        assert np.linalg.norm(w_star) <= 0.05, (seed, w_star)  # measured at most 0.023 (50 seeds)
        lstsq_mse = float(np.mean((signs(y) - augmented(x) @ w_star) ** 2))
        assert lstsq_mse >= 0.99, (seed, lstsq_mse)  # the best line does no better than w = 0 (MSE 1)
        assert run["train_loss"] >= 0.99 and claim.holds(run["train_loss"]), (seed, run["train_loss"])
        assert run["val_accuracy"] <= 0.75, (seed, run["val_accuracy"])  # at best 3 of the 4 clusters
    # the contrast: on the blobs the least-squares weights are far from zero
    blobs = ToyDataModule(dataset="blobs", n_samples=400, noise=1.0).arrays("train")
    assert np.linalg.norm(lstsq_weights(*blobs)) >= 0.5


# ---------------------------------------------------------------------------------------- step size
def test_lambda_max_is_the_largest_eigenvalue_of_the_input_correlation_matrix() -> None:
    for seed in range(3):
        x, y = ToyDataModule(dataset="blobs", n_samples=400, noise=1.0, seed=seed).arrays("train")
        learner = AdalineLearner(input_dim=2, mode="batch", relative_learning_rate=0.9)
        learner.observe(x[:100], y[:100])  # in two parts: the sums add up
        learner.observe(x[100:], y[100:])
        X = augmented(x)
        R, p = X.T @ X / len(X), X.T @ signs(y) / len(X)
        R_learner, p_learner = learner.correlation()
        np.testing.assert_allclose(R_learner, R, rtol=1e-10)
        np.testing.assert_allclose(p_learner, p, rtol=1e-10, atol=1e-12)
        lambda_max = float(np.linalg.eigvalsh(R)[-1])
        assert learner.lambda_max() == pytest.approx(lambda_max, rel=1e-10)
        assert 1.0 < lambda_max < 1.5  # standardised features: 1 + their correlation (config: 1.03 to 1.44)
        assert learner.stability_limit() == pytest.approx(2 / lambda_max, rel=1e-10)
        assert learner.learning_rate == pytest.approx(0.9 * 2 / lambda_max, rel=1e-10)


def test_batch_lms_converges_below_two_over_lambda_max_and_diverges_above() -> None:
    below, above = claim_of("adaline/step_size_below_limit"), claim_of("adaline/step_size_above_limit")
    for seed in SEEDS:
        safe = run_like_the_config("adaline/step_size_below_limit", seed)
        unsafe = run_like_the_config("adaline/step_size_above_limit", seed)
        assert safe["learner"].learning_rate < safe["learner"].stability_limit() < unsafe["learner"].learning_rate
        assert safe["train_lstsq_distance"] <= 1e-3 and below.holds(safe["train_lstsq_distance"]), seed
        assert unsafe["train_lstsq_distance"] >= 100 and above.holds(unsafe["train_lstsq_distance"]), seed
        assert not unsafe["learner"].diverged  # 40 steps: far off, but not yet past the stop
        # the direction of lambda_max dominates: each step multiplies the distance by |1 - 1.1 * 2| = 1.2
        growth = unsafe["distances"][-1] / unsafe["distances"][-2]
        assert growth == pytest.approx(1.2, rel=0.02), (seed, growth)


def test_a_runaway_rule_stops_itself_with_its_last_finite_weights() -> None:
    run = run_like_the_config("adaline/step_size_above_limit", 0, relative_learning_rate=3.0, max_epochs=60)
    learner = run["learner"]
    assert learner.diverged and learner.diverged_at is not None and learner.diverged_at < 60
    assert np.isfinite(learner.weight).all() and np.isfinite(learner.bias).all()
    assert learner.updates == learner.diverged_at  # no update after the stop
    assert np.isfinite(run["distances"]).all() and math.isfinite(run["train_loss"])
    frozen = own_weights(learner)
    x, y = run["train"]
    learner.train_batch(x, y)  # once diverged it only scores
    np.testing.assert_array_equal(own_weights(learner), frozen)


def test_adaline_vs_perceptron_the_perceptron_makes_more_mistakes_on_six_data_seeds() -> None:
    """The last pass's ratio of mistakes, the claim's metric; six seeds (two learners, 600 points,
    20 passes in Python loops: the slowest of the replays)."""
    claim = claim_of("adaline/adaline_vs_perceptron")
    assert claim.metric == "train_error_ratio" and claim.value == 1.1
    ratios = [run_like_the_config("adaline/adaline_vs_perceptron", seed)["train_error_ratio"] for seed in range(6)]
    assert all(claim.holds(r) for r in ratios), ratios  # measured 1.16 to 1.7 over 50 seeds


# ---------------------------------------------------------------------------------------- Lightning
def logged_rows(log_dir: str) -> list[dict[str, float]]:
    with open(Path(log_dir) / "metrics.csv") as file:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


@pytest.mark.parametrize(
    "name",
    [
        "adaline/least_squares_strength",
        "adaline/iris_strength",
        "adaline/xor_weakness",
        "adaline/step_size_below_limit",
        "adaline/step_size_above_limit",
    ],
)
def test_claim_reproduced_by_the_cli(workdir: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli = main(["fit", "--config", config(name), *NO_FIGURES])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("[claim]"))
    assert line == cli.claim_result.line() and line.endswith("REPRODUCED"), line
    assert cli.trainer.current_epoch == yaml.safe_load(Path(config(name)).read_text())["trainer"]["max_epochs"]


def test_a_divergent_cli_run_stops_itself_and_logs_only_finite_numbers(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = main(["fit", "--config", config("adaline/step_size_above_limit"), *NO_FIGURES, "--model.init_args.relative_learning_rate", "3.0"])
    assert "LMS diverged in update" in capsys.readouterr().out
    learner = cli.model.learner
    assert learner.diverged and cli.trainer.current_epoch < cli.trainer.max_epochs  # stopped early
    assert cli.trainer.callback_metrics["diverged"] == 1.0
    rows = logged_rows(cli.log_dir)
    assert rows and all(math.isfinite(value) for row in rows for value in row.values())
    assert max(row["train_lstsq_distance"] for row in rows if "train_lstsq_distance" in row) > 1e6
    assert cli.claim_result is not None and cli.claim_result.reproduced  # far past 100


def test_figures_are_the_generic_ones_and_adalines_own() -> None:
    plain = Adaline(input_dim=2).figures(every_n_epochs=4)
    compared = Adaline(input_dim=2, compare_perceptron=True).figures(every_n_epochs=4)
    assert all(figure.every_n_epochs == 4 for figure in compared)
    assert [type(f) for f in plain if isinstance(f, (LeastSquaresConvergence, AdalineVsPerceptron))] == [LeastSquaresConvergence]
    assert {type(f) for f in compared} - {type(f) for f in plain} == {AdalineVsPerceptron}
    assert {"learning_curves", "decision_boundary", "gradient_flow"} <= {f.name for f in plain}


def test_model_info_and_checkpoint_state_roundtrip() -> None:
    model = Adaline(input_dim=2, mode="batch", relative_learning_rate=3.0, compare_perceptron=True)
    info = model.model_info()
    assert info["parameter_count"] == 3 and info["input_size"] == [2]  # what the built model knows
    x, y = ToyDataModule(dataset="blobs", n_samples=400, noise=1.0).arrays("train")
    model.learner.observe(x, y)
    while not model.learner.diverged:
        model.learner.train_batch(x, y)
    model.perceptron.train_batch(x, y)
    model.perceptron.rng.random()
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)  # what Lightning does; it must load back with weights_only
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    other = Adaline(input_dim=2, mode="batch", relative_learning_rate=3.0, compare_perceptron=True)
    other.on_load_checkpoint(checkpoint)
    a, b = model.learner, other.learner
    np.testing.assert_array_equal(b.weight, a.weight)
    np.testing.assert_array_equal(b.bias, a.bias)
    assert b.diverged and b.diverged_at == a.diverged_at and b.updates == a.updates
    assert b.learning_rate == a.learning_rate and b.lambda_max() == a.lambda_max()
    for key, value in a.statistics().items():
        np.testing.assert_array_equal(b.statistics()[key], value)
    np.testing.assert_array_equal(other.perceptron.weight, model.perceptron.weight)
    np.testing.assert_array_equal(other.perceptron.bias, model.perceptron.bias)
    assert other.perceptron.rng.bit_generator.state == model.perceptron.rng.bit_generator.state
    np.testing.assert_array_equal(other.learned["weight"].detach().numpy(), a.weight)
    # a checkpoint written without the Perceptron cannot restore one
    del checkpoint["perceptron_learner"]
    with pytest.raises(KeyError, match="perceptron_learner"):
        Adaline(input_dim=2, compare_perceptron=True).on_load_checkpoint(checkpoint)


def test_wandb_record_figures_and_checkpoint_of_the_comparison_run(wandb_offline: Path, workdir: Path) -> None:
    """adaline_vs_perceptron through the CLI with wandb: claim, figures, the record, the checkpoint."""
    cli = main(["fit", "--config", config("adaline/adaline_vs_perceptron"), "--wandb", *QUIET])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()
    metrics = cli.trainer.callback_metrics
    assert metrics["train_perceptron_errors"] >= 1.1 * metrics["train_errors"] and "val_perceptron_accuracy" in metrics
    figures = Path(cli.log_dir) / "figures"
    assert {"adaline_vs_perceptron.png", "least_squares.png"} <= {path.name for path in figures.glob("*.png")}
    assert (figures / "adaline_vs_perceptron.png").stat().st_size > 10_000

    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-adaline" and log.name == "adaline_vs_perceptron" and log.job_type == "fit"
    assert log.group == "adaline-vs-perceptron"
    for tag in ("adaline", "module-1", "foundation", "numpy", "adaline_vs_perceptron", "strength", "synthetic", "comparison", "perceptron"):
        assert tag in log.tags, (tag, log.tags)
    info = log.config["model_info"]
    assert info["name"] == "adaline" and info["year_introduced"] == 1960 and info["parameter_count"] == 3
    assert log.config["experiment"]["claim"]["metric"] == "train_error_ratio"
    assert log.config["cli"]["model"]["class_path"] == "ai_scratch.foundations.adaline.Adaline"

    adaline_keys = ("train_lstsq_distance", "train_lstsq_loss", "lambda_max", "diverged", "train_error_ratio", "train_perceptron_errors")
    for key in ("train_loss", "val_accuracy", "learning_rate", "val_perceptron_accuracy", *adaline_keys):
        assert key in log.history_keys, key
    rows = [row for row in log.history if "train_lstsq_distance" in row]
    assert len(rows) == 20 and rows[-1]["train_lstsq_distance"] <= 0.03 and rows[0]["train_lstsq_distance"] > 0.1
    assert all(row["diverged"] == 0 for row in rows) and 1.0 < rows[-1]["lambda_max"] < 1.5
    assert all(row["train_error_ratio"] >= 1.1 for row in rows[5:]), [row["train_error_ratio"] for row in rows]

    images = {key.split("/")[1] for row in log.history for key, value in row.items() if key.endswith("/_type") and value == "image-file"}
    assert {"adaline_vs_perceptron", "least_squares"} <= images, images

    assert {a["name"] for a in log.artifacts} == {f"model-{log.run_id}", f"figures-{log.run_id}"}  # checkpoints, figures
    aliases = [set(a["aliases"]) for a in log.artifacts]
    assert any({"latest", "best"} <= a for a in aliases), aliases
    best = next(a for a in log.artifacts if "best" in a["aliases"])
    assert best["files"] == ["model.ckpt"] and best["metadata"]["model_info"]["name"] == "adaline"
    assert log.summary["claim/reproduced"] is True and log.summary["claim/observed"] >= 1.1
    assert log.exit_code == 0

    # the checkpoint Lightning wrote carries both learners, the Perceptron's state included
    checkpoint = torch.load(Path(cli.log_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    restored = Adaline(input_dim=2, learning_rate=0.002, compare_perceptron=True)
    restored.on_load_checkpoint(checkpoint)
    np.testing.assert_array_equal(restored.learner.weight, cli.model.learner.weight)
    np.testing.assert_array_equal(restored.learner.bias, cli.model.learner.bias)
    np.testing.assert_array_equal(restored.perceptron.weight, cli.model.perceptron.weight)
    np.testing.assert_array_equal(restored.perceptron.bias, cli.model.perceptron.bias)
    assert restored.learner.statistics()["count"] == 600 and restored.learner.updates == 20


def test_paper_sized_is_the_4x4_switch_adaline() -> None:
    """16 switch weights and the level weight; 16 multiply-adds per pattern, as torch's counter counts
    the same weighted sum."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = Adaline.paper_sized()
    assert sum(p.numel() for p in model.parameters()) == 4 * 4 + 1
    assert tuple(model.example_input_array.shape) == (1, 16)
    counter = FlopCounterMode(display=False)
    with counter:
        torch.empty(1, 16, device="meta") @ torch.empty(16, 1, device="meta")
    assert model.forward_flops() == counter.get_total_flops() == 2 * 16
