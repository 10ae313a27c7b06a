"""R-CNN (Girshick et al., 2014): the simplified selective search on hand-made images, warping with
context padding, the labelling of regions for the three stages, the SVM and ridge objectives,
per-class NMS with box regression at inference, the paper's network and its parameter count, bad
input, real fits through the CLI, and (slow) the claim: mAP@0.5 on shapes over seeds 0, 1, 2."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torchvision.ops import box_iou

from ai_scratch.applying_cnns.rcnn import (
    PAPER_CNN_PARAMETERS,
    PAPER_PARAMETERS,
    RCNN,
    detections_from_regions,
    dilate_for_context,
    graph_segmentation,
    hierarchical_grouping,
    label_regions,
    proposal_recall,
    ridge_objective,
    sample_finetuning_batch,
    selective_search,
    sliding_windows,
    svm_objective,
    warp_regions,
)
from ai_scratch.cli import AIScratchCLI, main
from conftest import config, fit_on_two_processes, quiet_trainer
from datamodules.shapes import ShapesDataModule

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
SMOKE = ["--trainer.max_epochs=2", "--model.svm_epochs=1", "--data.train_size=32", "--data.val_size=8", "--data.test_size=8", "--data.batch_size=16"]
RECTANGLES = {(5, 6, 20, 18): (0.9, 0.1, 0.1), (30, 10, 58, 26): (0.1, 0.9, 0.2), (12, 35, 40, 60): (0.2, 0.3, 1.0)}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hand_made_image() -> torch.Tensor:
    """Three rectangles of saturated colours (xyxy keys of RECTANGLES) on a noisy grey background."""
    image = 0.35 + 0.03 * np.random.default_rng(0).standard_normal((3, 64, 64))
    for (x0, y0, x1, y1), colour in RECTANGLES.items():
        image[:, y0:y1, x0:x1] = np.asarray(colour)[:, None, None]
    return torch.from_numpy(image.clip(0, 1).astype(np.float32))


def small_model(**overrides: object) -> RCNN:
    return RCNN(**{"backbone": "small", "num_classes": 4, **overrides})


# ---------------------------------------------------------------------- region proposals
def test_selective_search_finds_the_drawn_rectangles_and_is_deterministic() -> None:
    image = hand_made_image()
    proposals = selective_search(image)
    truth = torch.tensor(list(RECTANGLES), dtype=torch.float32)
    assert box_iou(truth, proposals).max(dim=1).values.min() >= 0.7
    assert torch.equal(proposals, selective_search(image.clone()))  # the same boxes in the same order
    assert proposals.dtype == torch.float32 and proposals.shape[1] == 4
    assert (proposals[:, :2] >= 0).all() and (proposals[:, 2:] <= 64).all() and (proposals[:, 2:] > proposals[:, :2]).all()
    assert len(torch.unique(proposals, dim=0)) == len(proposals)  # duplicates removed
    assert len(selective_search(image, max_proposals=3)) == 3


def test_graph_segmentation_separates_flat_regions_and_k_sets_the_scale() -> None:
    image = np.zeros((3, 16, 16))
    image[:, :, 8:] = 1.0  # two halves
    labels = graph_segmentation(image, k=100)
    assert labels.max() == 1 and len(np.unique(labels[:, :8])) == 1 and labels[0, 0] != labels[0, 15]
    noisy = hand_made_image().numpy()
    fine, coarse = graph_segmentation(noisy, k=20, min_size=1), graph_segmentation(noisy, k=400, min_size=1)
    assert coarse.max() < fine.max()  # a larger k makes larger (fewer) regions
    assert np.bincount(graph_segmentation(noisy, k=20, min_size=30).ravel()).min() >= 30


def test_hierarchical_grouping_merges_similar_neighbours_into_one_region() -> None:
    """Four regions in a row, colours red, red, blue, blue: the two reds and the two blues merge
    first (colour), then the whole image; 4 initial regions give 2 * 4 - 1 boxes."""
    image = np.zeros((3, 8, 16))
    image[0, :, :8], image[2, :, 8:] = 1.0, 1.0
    labels = np.repeat(np.arange(4), 4)[None, :].repeat(8, axis=0)
    boxes = hierarchical_grouping(image, labels, ("colour", "size", "fill"))
    assert len(boxes) == 7
    assert boxes[:4].tolist() == [[0, 0, 4, 8], [4, 0, 8, 8], [8, 0, 12, 8], [12, 0, 16, 8]]
    assert sorted(boxes[4:6].tolist()) == [[0, 0, 8, 8], [8, 0, 16, 8]] and boxes[6].tolist() == [0, 0, 16, 8]


def test_proposals_recall_the_shapes_and_sliding_windows_do_not_fit_them() -> None:
    data = ShapesDataModule(train_size=1, val_size=1, test_size=20).generate("test")
    proposals = [selective_search(image) for image in data.images]
    windows = [sliding_windows(64, 64)] * len(proposals)
    assert proposal_recall(proposals, data.targets, 0.7) >= 0.95
    assert proposal_recall(windows, data.targets, 0.7) <= 0.5 < proposal_recall(windows, data.targets, 0.5)
    assert proposal_recall(proposals, data.targets, 0.7, top=1) < proposal_recall(proposals, data.targets, 0.7)


def test_the_model_caches_proposals_per_image() -> None:
    model, images = small_model(), torch.stack([hand_made_image(), hand_made_image().flip(-1)])
    first = model.proposals(images)
    assert len(model._proposal_cache) == 2
    again = model.proposals(images[[1, 0]])
    assert torch.equal(again[0], first[1]) and torch.equal(again[1], first[0]) and len(model._proposal_cache) == 2
    uncached = small_model(cache_proposals=False)
    assert all(torch.equal(a, b) for a, b in zip(uncached.proposals(images), first, strict=True))
    assert len(uncached._proposal_cache) == 0
    windows = small_model(proposal_method="sliding_windows").proposals(images)
    assert torch.equal(windows[0], sliding_windows(64, 64, max_proposals=100))


# ---------------------------------------------------------------------- warping (Appendix A)
def test_warping_gives_the_fixed_size_with_p_pixels_of_context() -> None:
    image = torch.zeros(1, 3, 64, 64)
    image[:, :, 16:32, 16:32] = 1.0  # a white square on black; image mean 256 / 4096
    mean = 256 / 4096
    warped = warp_regions(image, [torch.tensor([[16.0, 16.0, 32.0, 32.0], [0.0, 0.0, 16.0, 40.0]])], warp_size=32, padding=4)
    assert warped.shape == (2, 3, 32, 32)  # whatever the box's size and aspect ratio
    square = warped[0, 0]
    torch.testing.assert_close(square[5:27, 5:27], torch.full((22, 22), 1.0 - mean))  # the box fills the centre 24 x 24
    torch.testing.assert_close(square[:3], torch.full((3, 32), -mean))  # p = 4 pixels of context (black) around it
    torch.testing.assert_close(square[:, :3], torch.full((32, 3), -mean))
    # a box at the corner: its context lies beyond the image and reads as the image mean (0 after centring)
    torch.testing.assert_close(warped[1, 0, :2, :2], torch.zeros(2, 2))
    dilated = dilate_for_context(torch.tensor([[10.0, 20.0, 22.0, 26.0]]), warp_size=32, padding=4)
    torch.testing.assert_close(dilated, torch.tensor([[8.0, 19.0, 24.0, 27.0]]))  # 4 * 12 / 24 and 4 * 6 / 24


def test_warped_regions_come_in_the_order_of_the_boxes() -> None:
    images = torch.stack([hand_made_image(), hand_made_image().flip(-1)])
    boxes = torch.tensor([[5.0, 6.0, 20.0, 18.0], [30.0, 10.0, 58.0, 26.0]])
    per_image = warp_regions(images, [boxes[:1], boxes[1:]], 32, 3)
    indexed = warp_regions(images, boxes[[1, 0]], 32, 3, image_index=torch.tensor([1, 0]))
    torch.testing.assert_close(indexed[[1, 0]], per_image)


# ---------------------------------------------------------------------- labelling and the stages' objectives
def test_regions_are_labelled_by_iou_for_each_stage() -> None:
    truth = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0]]), "labels": torch.tensor([1, 0])}
    proposals = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],  # IoU 1 with the class-1 box
        [0.0, 0.0, 10.0, 12.0],  # IoU 100 / 120 = 0.83
        [0.0, 0.0, 10.0, 20.0],  # IoU 0.5
        [0.0, 0.0, 10.0, 40.0],  # IoU 0.25
        [50.0, 50.0, 60.0, 60.0],  # nothing
    ])  # fmt: skip
    regions = label_regions([proposals], [truth], num_classes=2)
    assert len(regions.boxes) == 1 and regions.boxes[0].shape == (7, 4)  # the ground truth first, then the proposals
    # fine-tuning: IoU >= 0.5 is a positive of that box's class (c + 1), the ground truth included
    assert regions.finetune_labels.tolist() == [2, 1, 2, 2, 2, 0, 0]
    # SVMs: +1 only for ground-truth boxes; -1 below IoU 0.3 with every box of the class; 0 between
    assert regions.svm_targets.tolist() == [[-1, 1], [1, -1], [-1, 0], [-1, 0], [-1, 0], [-1, -1], [-1, -1]]
    # regression: proposals (not the ground truth) with IoU >= 0.6, towards their best ground truth
    assert regions.regression_classes.tolist() == [-1, -1, 1, 1, -1, -1, -1]
    torch.testing.assert_close(regions.regression_targets[3], torch.tensor([0.0, -1 / 12, 0.0, math.log(10 / 12)]))
    torch.testing.assert_close(regions.regression_targets[2], torch.zeros(4))
    empty = label_regions([proposals], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}], 2)
    assert empty.finetune_labels.tolist() == [0] * 5 and (empty.svm_targets == -1).all() and (empty.regression_classes == -1).all()


def test_a_finetuning_batch_holds_32_positives_and_96_background_regions() -> None:
    labels = torch.tensor([0] * 10 + [3, 1, 2] + [0] * 5)
    chosen = sample_finetuning_batch(labels, positives=32, total=128)
    assert len(chosen) == 128 and int((labels[chosen] > 0).sum()) == 32
    assert set(chosen[:32].tolist()) <= {10, 11, 12} and set(chosen[32:].tolist()) <= set(range(10)) | set(range(13, 18))
    assert (labels[sample_finetuning_batch(torch.zeros(5, dtype=torch.long))] == 0).all()


def test_the_svm_objective_learns_only_from_margin_violations() -> None:
    targets = torch.tensor([[1.0, -1.0], [-1.0, 0.0], [-1.0, -1.0]])
    scores = torch.tensor([[0.5, -3.0], [-0.5, 7.0], [2.0, -1.0]])
    weight = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    # positive (0, 0) inside the margin: 2 * 0.5; negatives: (1, 0) 0.5, (2, 0) 3.0; easy negatives and (1, 1) (ignored) add 0
    expected = (2 * 0.5 + 0.5 + 3.0) / 3 + 0.5 * 0.1 * 6.0
    assert float(svm_objective(scores, targets, weight, regularisation=0.1)) == pytest.approx(expected)
    scores = scores.clone().requires_grad_()
    svm_objective(scores, targets, weight, 0.0).backward()
    assert scores.grad[:, 1].abs().sum() == 0 and scores.grad[2, 0] > 0  # a hard negative is pushed down


def test_the_ridge_objective_trains_only_the_pairs_class_regressor() -> None:
    predicted = torch.zeros(3, 8)
    predicted[0, 4:] = torch.tensor([0.1, 0.0, 0.0, 0.0])  # class 1's regressor of pair 0
    predicted[0, :4] = 5.0  # class 0's: not this pair's class, not counted
    targets = torch.tensor([[0.0, 0.2, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0]])
    classes = torch.tensor([1, -1, 0])
    weight = torch.ones(8, 2)
    expected = ((0.1**2 + 0.2**2) + 0.3**2) / 2 + 0.01 * 16
    assert float(ridge_objective(predicted, targets, classes, weight, regularisation=0.01)) == pytest.approx(expected)
    assert float(ridge_objective(predicted, targets, torch.full((3,), -1), weight, 0.0)) == 0.0


# ---------------------------------------------------------------------- inference
def test_inference_regresses_the_boxes_and_suppresses_per_class_at_iou_0_3() -> None:
    proposals = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 14.0], [0.0, 0.0, 10.0, 25.0], [40.0, 40.0, 50.0, 50.0]])
    scores = torch.tensor([[0.9, -2.0], [0.8, 0.5], [0.7, -2.0], [-1.5, -2.0]])  # (P, C)
    found = detections_from_regions(proposals, scores, None, (64, 64), score_threshold=-1.0, nms_threshold=0.3, max_detections=100)
    # class 0: the second (IoU 0.71) and third (IoU 0.4) boxes fall to the first; class 1's box stays; -1.5 is below the threshold
    assert sorted(zip(found["labels"].tolist(), [round(s, 3) for s in found["scores"].tolist()])) == [(0, 0.9), (1, 0.5)]
    looser = detections_from_regions(proposals, scores, None, (64, 64), -1.0, nms_threshold=0.5, max_detections=100)
    assert sorted(looser["scores"].tolist()) == pytest.approx([0.5, 0.7, 0.9])  # IoU 0.4 < 0.5 survives
    deltas = torch.zeros(4, 8)
    deltas[0, :4] = torch.tensor([0.1, 0.0, math.log(2.0), 0.0])  # class 0 moves box 0 by 1 pixel and doubles its width
    moved = detections_from_regions(proposals, scores, deltas, (64, 64), -1.0, 0.3, 100)
    first = moved["boxes"][moved["scores"].argmax()]
    torch.testing.assert_close(first, torch.tensor([0.0, 0.0, 16.0, 10.0]))  # centre 6, width 20, clipped at the image's edge
    assert len(detections_from_regions(proposals, scores, None, (64, 64), -1.0, 0.5, max_detections=2)["scores"]) == 2


def test_predict_on_raw_images_with_each_classifier() -> None:
    images = torch.stack([hand_made_image(), hand_made_image().flip(-1)])
    for model in (small_model(), small_model(classifier="softmax", bbox_regression=False, score_threshold=0.0)):
        found = model.predict(images)
        assert len(found) == 2 and all(set(f) == {"boxes", "scores", "labels"} for f in found)
        assert all(len(f["scores"]) <= 100 and (f["labels"] < 4).all() for f in found)
        assert all((f["boxes"] >= 0).all() and (f["boxes"] <= 64).all() for f in found)
    assert model(torch.rand(5, 3, 32, 32)).shape == (5, 4 + 1)


# ---------------------------------------------------------------------- the networks
def test_the_paper_network_is_alexnet_with_a_21_way_layer_svms_and_regressors() -> None:
    import torchvision

    with torch.device("meta"):  # 57.8M parameters: counted without allocating them
        model = RCNN.paper_sized()
        pool5 = model.features(torch.empty(1, 3, 227, 227))
        reference = torchvision.models.alexnet(weights=None)
        reference_pool5 = reference.features(torch.empty(1, 3, 227, 227))
        logits = model(torch.empty(2, 3, 227, 227))
    assert model.warp_size == 227 and model.context_padding == 16 and model.hparams.max_proposals == 2000
    assert tuple(pool5.shape[1:]) == tuple(reference_pool5.shape[1:]) == (256, 6, 6)  # pool5: 9216 features
    fc6, fc7 = (m for m in model.hidden if isinstance(m, nn.Linear))
    for ours, theirs in ((fc6, reference.classifier[1]), (fc7, reference.classifier[4])):
        assert ours.weight.shape == theirs.weight.shape  # 9216 -> 4096 -> 4096, as torchvision's
    conv1 = model.features.conv1
    assert (conv1.kernel_size, conv1.stride, conv1.out_channels) == ((11, 11), (4, 4), 96)  # 96 kernels of 11 x 11 x 3
    assert logits.shape == (2, 21)  # N + 1 = 21 for VOC
    cnn = count(model.features) + count(model.hidden) + count(model.finetune_layer)
    assert cnn == PAPER_CNN_PARAMETERS == 56_954_261  # AlexNet's 60,965,224 with fc8 4096 -> 21
    assert count(model.svms) == 20 * (4096 + 1) and count(model.regressors) == 20 * 4 * (9216 + 1)
    assert count(model) == PAPER_PARAMETERS == 57_773_561


def test_the_small_backbone_is_the_same_class_scaled_down() -> None:
    model = small_model()
    assert model.warp_size == 32 and model.hparams.max_proposals == 100 and model.regressors.in_features == 288
    assert count(model) < 1_000_000 and model.model_info()["name"] == "rcnn"
    assert model.model_info()["input_size"] == [3, 32, 32] and model.model_info()["output_size"] == [5]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"backbone": "vgg"}, "backbone must be one of"),
        ({"num_classes": 0}, "num_classes must be an integer >= 1"),
        ({"proposal_method": "edge_boxes"}, "proposal_method must be one of"),
        ({"classifier": "forest"}, "classifier must be one of"),
        ({"max_proposals": 0}, "max_proposals must be an integer >= 1"),
        ({"warp_size": 8, "context_padding": 4}, "warp_size must leave room inside its context padding"),
        ({"warp_size": 40, "context_padding": 2}, "warp_size 40 does not fit backbone 'paper'"),
        ({"positives_per_batch": 200}, "positives_per_batch must be in"),
        ({"colour_spaces": ["lab"]}, "colour_spaces must be a non-empty list"),
        ({"thresholds": [0.0]}, "thresholds must be a non-empty list of positive k values"),
        ({"similarity_sets": [["texture"]]}, "similarity_sets must be non-empty lists"),
        ({"window_sizes": [1.5]}, "window_sizes must be fractions"),
        ({"nms_threshold": 0.0}, "nms_threshold must be in"),
        ({"svm_negative_iou": 0.6}, "svm_negative_iou must be in"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"svm_regularisation": -1.0}, "svm_regularisation must be >= 0"),
        ({"svm_epochs": -1}, "svm_epochs must be an integer >= 0"),
        ({"head_learning_rate": 0.0}, "learning_rate and head_learning_rate must be positive"),
        ({"learning_rate": 0.0}, "learning_rate and head_learning_rate must be positive"),
        ({"class_names": ["a"], "num_classes": 2}, "class_names must name the 2 classes"),
    ],
)
def test_bad_arguments_are_one_line_errors(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        RCNN(**arguments)
    assert len(str(error.value).splitlines()) == 1


def test_images_of_another_shape_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"R-CNN expects images of shape \(N, 3, H, W\), got \(3, 64, 64\)"):
        small_model().predict(torch.rand(3, 64, 64))


# ---------------------------------------------------------------------- real fits
def test_a_fit_logs_the_three_objectives_and_mean_average_precision(workdir: Path) -> None:
    cli = main(["fit", "--config", config("rcnn/shapes_strength"), *QUIET, *SMOKE])
    with open(Path(cli.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    columns = set(rows[0])
    terms = {"loss", "finetune", "svm", "bbox"}
    detection = {"map", "map_50", "map_75", "map_small", "mar_100", "recall_50"}
    assert {f"train_{t}" for t in terms} | {f"val_{t}" for t in terms | detection} | {f"test_{t}" for t in detection} <= columns
    metrics = cli.trainer.callback_metrics
    assert 0 <= float(metrics["test_map_50"]) <= 1
    trained = [row for row in rows if row["train_finetune"]]
    assert len(trained) == 2 and float(trained[0]["train_finetune"]) > 0 and float(trained[0]["train_svm"]) > 0
    assert cli.claim_result is not None and cli.claim_result.observed == pytest.approx(float(metrics["test_map_50"]))
    assert cli.trainer.checkpoint_callback.monitor == "val_map_50"
    figures = {p.stem for p in (Path(cli.log_dir) / "figures").glob("*.png")}
    assert {"learning_curves", "proposals", "detections", "detections_test", "gradient_flow"} <= figures


class Snapshots(Callback):
    """The parameters at the end of every training epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer: object, pl_module: nn.Module) -> None:
        self.states.append({name: p.detach().clone() for name, p in pl_module.named_parameters()})


def test_the_last_svm_epochs_train_the_heads_on_a_frozen_cnn() -> None:
    """Stage 1 moves the CNN and the heads; in the SVM stage the CNN's rate is 0 and only the SVMs
    and regressors move (SGD with momentum and weight decay, the paper's optimizer, included)."""
    data = ShapesDataModule(train_size=32, val_size=4, test_size=4, batch_size=16)
    model = small_model(optimizer="sgd", svm_epochs=1, lr_schedule="cosine", head_learning_rate=0.01, learning_rate=0.01, weight_decay=5e-4)
    snapshots = Snapshots()
    quiet_trainer(max_epochs=2, callbacks=[snapshots], limit_val_batches=0).fit(model, datamodule=data)
    first, second = snapshots.states
    for name in first:
        moved = not torch.equal(first[name], second[name])
        assert moved == name.startswith(("svms.", "regressors.")), name
    assert model.trainer.optimizers[0].param_groups[0]["lr"] == 0.0


def test_a_run_no_longer_than_svm_epochs_fine_tunes_in_its_first_epoch(workdir: Path) -> None:
    """A smoke run or a short trial (``ai-scratch reproduce --quick``, a sweep's rung) still trains
    both stages: the first epoch fine-tunes, the rest fit the SVMs, and a warning says so."""
    with pytest.warns(UserWarning, match=r"svm_epochs=3 in a run of max_epochs=2: .* the SVM stage has the last 1"):
        cli = main(["fit", "--config", config("rcnn/shapes_strength"), *QUIET, *SMOKE, "--figures=false", "--model.svm_epochs=3"])
    assert [cli.model.frozen_epochs(n) for n in (1, 2, 3, 4, 5)] == [0, 1, 2, 3, 3]
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == 0.0  # the CNN frozen at the end
    assert cli.trainer.current_epoch == 2


def test_bf16_mixed_precision_fits(workdir: Path) -> None:
    cli = main(["fit", "--config", config("rcnn/shapes_strength"), *QUIET, *SMOKE, "--figures=false", "--trainer.precision=bf16-mixed"])
    assert cli.trainer.precision == "bf16-mixed"
    assert all(torch.isfinite(value).all() for value in cli.trainer.callback_metrics.values())


def test_the_weakness_config_is_the_strength_without_box_regression(workdir: Path) -> None:
    strength, weakness = (AIScratchCLI(args=["--config", config(f"rcnn/{name}")], run=False) for name in ("shapes_strength", "localisation_weakness"))
    assert weakness.model.hparams.bbox_regression is False and strength.model.hparams.bbox_regression is True
    differing = {key for key in strength.model.hparams if strength.model.hparams[key] != weakness.model.hparams[key]}
    assert differing == {"bbox_regression"} and dict(strength.datamodule.hparams) == dict(weakness.datamodule.hparams)
    assert weakness.config["experiment"].claim.metric == "test_map_75" and weakness.config["experiment"].claim.comparison == "<="


def test_data_with_another_number_of_classes_is_one_line(workdir: Path) -> None:
    with pytest.raises(ValueError, match=r"num_classes=3 but the data has 4 classes: set --model.num_classes=4"):
        main(["fit", "--config", config("rcnn/shapes_strength"), *QUIET, *SMOKE, "--figures=false", "--model.num_classes=3"])


# ---------------------------------------------------------------------- the claims (slow)
@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_rcnn_finds_the_shapes(workdir: Path, seed: int) -> None:
    """The strength: proposals, a CNN pass per warped region, per-class SVMs and box regression find
    shapes of four classes, mAP@0.5 >= 0.9 on the held-out images (measured 0.972 to 0.980), and
    place them tightly, mAP@0.75 >= 0.92 (measured 0.946 to 0.963), on every seed."""
    cli = main(["fit", "--config", config("rcnn/shapes_strength"), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    metrics = cli.trainer.callback_metrics
    assert float(metrics["test_map_50"]) >= 0.9 and float(metrics["test_map_75"]) >= 0.92
    assert cli.claim_result is not None and cli.claim_result.reproduced


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_without_box_regression_the_detections_are_only_as_tight_as_the_proposals(workdir: Path, seed: int) -> None:
    """The weakness (Appendix C, Section 3.4): without the regressors the same detector still finds
    the shapes (mAP@0.5 >= 0.9, measured 0.972 to 0.981) but places them worse: mAP@0.75 <= 0.91
    (measured 0.821 to 0.879, against 0.946 to 0.963 with regression)."""
    cli = main(["fit", "--config", config("rcnn/localisation_weakness"), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    metrics = cli.trainer.callback_metrics
    assert float(metrics["test_map_75"]) <= 0.91 and float(metrics["test_map_50"]) >= 0.9
    assert cli.claim_result is not None and cli.claim_result.reproduced


@pytest.mark.slow
def test_rcnn_on_two_processes_under_ddp(tmp_path: Path) -> None:
    """Two gloo processes through both stages: in the SVM epoch the CNN gets zero gradients but stays
    in the graph, so DDP's reduction completes, and the copies stay in step."""
    rank0, rank1, _ = fit_on_two_processes(
        "rcnn/shapes_strength", tmp_path, "--trainer.max_epochs", "2", "--model.svm_epochs", "1", "--data.train_size", "64",
        "--data.val_size", "16", "--data.test_size", "16", "--data.batch_size", "16", "--figures", "false", timeout=300,
    )  # fmt: skip
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)


def test_paper_sized_forward_flops_are_one_image_s_2000_regions_through_the_cnn() -> None:
    """Section 2.2: every proposal is warped and run through the whole CNN, then "the feature matrix
    is typically 2000 x 4096 and the SVM weight matrix is 4096 x N"; the regressors read pool5."""
    with torch.device("meta"):
        model = RCNN.paper_sized()
    assert count(model) == PAPER_PARAMETERS and tuple(model.example_input_array.shape) == (1, 3, 227, 227)
    # per warped region, each layer's neurons times the weights each reads (conv1 pads by 2: 56 x 56 maps
    # at 227, as torchvision's AlexNet); fc8's 21-way layer is not run at test time, the SVMs score fc7
    cnn = (56 * 56 * 96 * 11 * 11 * 3 + 27 * 27 * 256 * 5 * 5 * 48 + 13 * 13 * 384 * 3 * 3 * 256
           + 13 * 13 * 384 * 3 * 3 * 192 + 13 * 13 * 256 * 3 * 3 * 192 + 4096 * 9216 + 4096 * 4096)  # fmt: skip
    svms, regressors = 4096 * 20, 9216 * 4 * 20
    assert model.forward_flops() == 2 * 2000 * (cnn + svms + regressors)
