"""YOLO v1 (Redmon et al., 2016): eq. 3 term by term on a hand-made grid, the grid encoding and its
decoding, class-specific scores and per-class NMS, Figure 3's network and its parameter count
against an independent build, real fits through the CLI, bad input, and (slow) the claims: mAP@0.5
on shapes, and the missed objects of a crowded cell."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ai_scratch.applying_cnns.detection import RecallAtIoU
from ai_scratch.applying_cnns.yolo import (
    PAPER_OUTPUT,
    YOLO,
    decode_output,
    detections_from_output,
    encode_targets,
    yolo_loss,
)
from ai_scratch.cli import main
from cnn_tools import multiply_adds
from conftest import config, fit_on_two_processes
from wandb_log import find_runs, read_run
from datamodules.shapes import ShapesDataModule

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
SMOKE = ["--trainer.max_epochs=1", "--data.train_size=64", "--data.val_size=16", "--data.test_size=16", "--data.batch_size=16"]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------- eq. 3 by hand
def hand_made_output() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """S = 2, B = 2, C = 2 on a 64-pixel image; one object, box (8, 8)-(24, 40), class 1: centre
    (16, 24) in cell (row 0, col 0), so x = 0.5, y = 0.75, sqrt w = sqrt(0.25), sqrt h = sqrt(0.5)."""
    target = [{"boxes": torch.tensor([[8.0, 8.0, 24.0, 40.0]]), "labels": torch.tensor([1])}]
    output = torch.zeros(1, 2, 2, 12)
    output[0, 0, 0, 0:5] = torch.tensor([0.6, 0.75, 0.5, math.sqrt(0.5), 0.8])  # predictor 1: 0.1 cell to the right
    output[0, 0, 0, 5:10] = torch.tensor([0.2, 0.2, 0.3, 0.3, 0.4])  # predictor 2: a small box elsewhere in the cell
    output[0, 0, 0, 10:12] = torch.tensor([0.3, 0.6])  # p(c) of the cell
    output[0, 0, 1, 4], output[0, 0, 1, 9] = 0.1, 0.2  # confidences of an empty cell
    output[0, 1, 1, 10:12] = torch.tensor([5.0, 5.0])  # class outputs of an empty cell: not counted
    return output, target


def test_the_loss_is_eq_3_term_by_term_on_a_hand_made_grid() -> None:
    output, target = hand_made_output()
    encoded = encode_targets(target, grid_size=2, num_classes=2, image_size=64)
    terms = yolo_loss(output, encoded, boxes_per_cell=2)
    # predictor 1 overlaps the truth with IoU (16 - 3.2) / (16 + 3.2) = 2/3 and is responsible
    iou = 12.8 / 19.2
    expected = {
        "coord": 0.1**2,  # (x - x^)^2 + (y - y^)^2
        "size": 0.0,  # square roots of the sizes exact
        "object": (0.8 - iou) ** 2,  # C^ = Pr(Object) * IOU
        "noobject": 0.4**2 + 0.1**2 + 0.2**2,  # predictor 2 of the object's cell, and the empty cell
        "class": 0.3**2 + (0.6 - 1.0) ** 2,  # only the cell with the object
    }
    for name, value in expected.items():
        assert float(terms[name]) == pytest.approx(value, abs=1e-6), name
    total = 5 * (expected["coord"] + expected["size"]) + expected["object"] + 0.5 * expected["noobject"] + expected["class"]
    assert float(terms["loss"]) == pytest.approx(total, abs=1e-6)
    # the common simplification: the confidence target of a responsible predictor is 1
    assert float(yolo_loss(output, encoded, 2, confidence_target="one")["object"]) == pytest.approx(0.2**2)
    # the lambdas weight what the paper says they weight
    plain = yolo_loss(output, encoded, 2, lambda_coord=1.0, lambda_noobj=1.0)
    assert float(plain["loss"]) == pytest.approx(sum(expected.values()), abs=1e-6)


def test_the_predictor_with_the_higher_iou_is_made_responsible() -> None:
    output, target = hand_made_output()
    output[0, 0, 0, 5:9] = torch.tensor([0.5, 0.75, 0.5, math.sqrt(0.5)])  # predictor 2 now exact
    terms = yolo_loss(output, encode_targets(target, 2, 2, 64), boxes_per_cell=2)
    assert float(terms["coord"]) == pytest.approx(0.0, abs=1e-9)
    assert float(terms["object"]) == pytest.approx((0.4 - 1.0) ** 2, abs=1e-6)  # its confidence against IoU 1
    assert float(terms["noobject"]) == pytest.approx(0.8**2 + 0.1**2 + 0.2**2, abs=1e-6)  # predictor 1 is now "no object"


def test_the_square_roots_make_the_same_error_cost_more_in_a_small_box() -> None:
    """Section 2.2: "small deviations in large boxes matter less than in small boxes"."""
    costs = []
    for side in (8.0, 32.0):
        target = [{"boxes": torch.tensor([[16.0, 16.0, 16.0 + side, 16.0 + side]]), "labels": torch.tensor([0])}]
        encoded = encode_targets(target, 1, 2, 64)
        output = torch.zeros(1, 1, 1, 7)
        output[..., :4] = encoded["cell_box"]
        output[..., 2] = math.sqrt((side + 4.0) / 64)  # the width 4 pixels too wide
        costs.append(float(yolo_loss(output, encoded, 1)["size"]))
    assert costs[0] > 3 * costs[1]


# ---------------------------------------------------------------------- encoding and decoding
def perfect_output(encoded: dict[str, torch.Tensor], boxes_per_cell: int) -> torch.Tensor:
    """The output a perfect network would give: the first predictor of each object's cell on the
    truth with confidence 1, the others 0, the cell's class one-hot."""
    n, side = encoded["object"].shape[:2]
    output = torch.zeros(n, side, side, boxes_per_cell * 5 + encoded["classes"].shape[-1])
    output[..., :4] = encoded["cell_box"]
    output[..., 4] = encoded["object"].float()
    output[..., boxes_per_cell * 5 :] = encoded["classes"]
    return output


@pytest.mark.parametrize("boxes_per_cell", [1, 2])
def test_encoding_then_decoding_gives_the_boxes_back(boxes_per_cell: int) -> None:
    targets = ShapesDataModule(test_set="spread", crowded_objects=4, test_size=6, train_size=1, val_size=1).dataset("test").targets
    encoded = encode_targets(targets, grid_size=4, num_classes=4, image_size=64)
    assert encoded["object"].sum(dim=(1, 2)).tolist() == [4] * 6
    detections = detections_from_output(perfect_output(encoded, boxes_per_cell), boxes_per_cell, 64, 0.5, 0.5, 100)
    for found, target in zip(detections, targets, strict=True):
        key = lambda boxes: boxes[:, 0] * 1000 + boxes[:, 1]  # noqa: E731  (left to right, then top to bottom)
        order, truth = key(found["boxes"]).argsort(), key(target["boxes"]).argsort()
        torch.testing.assert_close(found["boxes"][order], target["boxes"][truth], atol=1e-4, rtol=0)
        assert found["labels"][order].tolist() == target["labels"][truth].tolist()
        assert torch.allclose(found["scores"], torch.ones_like(found["scores"]))


def test_a_cell_with_several_centres_keeps_the_largest_object() -> None:
    target = [{"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0], [2.0, 2.0, 14.0, 14.0]]), "labels": torch.tensor([0, 1])}]
    encoded = encode_targets(target, grid_size=4, num_classes=2, image_size=64)
    assert int(encoded["object"].sum()) == 1 and encoded["classes"][0, 0, 0].tolist() == [0.0, 1.0]
    torch.testing.assert_close(encoded["box"][0, 0, 0] * 64, torch.tensor([2.0, 2.0, 14.0, 14.0]))


def test_decoding_places_each_box_in_its_cell() -> None:
    output = torch.zeros(1, 2, 2, 7)
    output[0, 1, 0, :5] = torch.tensor([0.5, 0.5, math.sqrt(0.5), math.sqrt(0.5), 1.0])  # row 1, col 0: centre (16, 48), 32 x 32
    boxes, confidence, classes = decode_output(output, boxes_per_cell=1, image_size=64)
    torch.testing.assert_close(boxes[0, 2], torch.tensor([0.0, 32.0, 32.0, 64.0]))
    assert confidence[0].tolist() == [0.0, 0.0, 1.0, 0.0] and classes.shape == (1, 4, 2)


# ---------------------------------------------------------------------- scores and NMS
def test_class_specific_scores_thresholds_and_per_class_nms() -> None:
    """Eq. 1: score = Pr(Class | Object) * confidence; duplicates of one class suppressed, boxes of
    another class or far away kept."""
    output = torch.zeros(1, 2, 2, 2 * 5 + 2)
    box = [0.5, 0.5, math.sqrt(0.4), math.sqrt(0.4)]
    output[0, 0, 0, :10] = torch.tensor([*box, 0.9, *box[:2], box[2] * 1.02, box[3], 0.8])  # two near-copies in one cell
    output[0, 0, 0, 10:] = torch.tensor([1.0, 0.0])
    output[0, 0, 1, :5] = torch.tensor([0.1, 0.5, *box[2:], 0.7])  # overlaps them, from the neighbouring cell
    output[0, 0, 1, 10:] = torch.tensor([0.0, 1.0])  # ... of the other class
    output[0, 1, 1, :5] = torch.tensor([*box, 0.6])  # far away, class 0
    output[0, 1, 1, 10:] = torch.tensor([0.5, 0.0])  # score 0.6 * 0.5 = 0.3
    found = detections_from_output(output, 2, 64, score_threshold=0.2, nms_threshold=0.5, max_detections=100)[0]
    assert sorted(zip(found["labels"].tolist(), [round(s, 4) for s in found["scores"].tolist()])) == [(0, 0.3), (0, 0.9), (1, 0.7)]
    # a threshold above 0.3 drops the far box; a class-agnostic view would have lost class 1 too
    higher = detections_from_output(output, 2, 64, score_threshold=0.35, nms_threshold=0.5, max_detections=100)[0]
    assert sorted(higher["labels"].tolist()) == [0, 1]
    assert len(detections_from_output(output, 2, 64, 0.2, 0.5, max_detections=1)[0]["scores"]) == 1


def test_recall_at_iou_counts_each_detection_once_and_needs_the_class() -> None:
    recall = RecallAtIoU(0.5)
    truth = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [30.0, 30.0, 40.0, 40.0]]), "labels": torch.tensor([0, 0, 1])}]
    found = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 40.0, 40.0]]), "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}]
    recall.update(found, truth)
    assert float(recall.compute()) == pytest.approx(1 / 3)  # one box cannot find two objects; the wrong class finds none


# ---------------------------------------------------------------------- Figure 3
def figure_3_by_hand() -> nn.Sequential:
    """Figure 3 written out layer by layer with plain nn layers, independently of PAPER_LAYERS."""

    def conv(cin: int, cout: int, k: int, s: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, s, k // 2), nn.LeakyReLU(0.1)]

    layers: list[nn.Module] = [*conv(3, 64, 7, 2), nn.MaxPool2d(2), *conv(64, 192, 3), nn.MaxPool2d(2)]
    layers += [*conv(192, 128, 1), *conv(128, 256, 3), *conv(256, 256, 1), *conv(256, 512, 3), nn.MaxPool2d(2)]
    for _ in range(4):
        layers += [*conv(512, 256, 1), *conv(256, 512, 3)]
    layers += [*conv(512, 512, 1), *conv(512, 1024, 3), nn.MaxPool2d(2)]
    for _ in range(2):
        layers += [*conv(1024, 512, 1), *conv(512, 1024, 3)]
    layers += [*conv(1024, 1024, 3), *conv(1024, 1024, 3, 2), *conv(1024, 1024, 3), *conv(1024, 1024, 3)]
    layers += [nn.Flatten(), nn.Linear(7 * 7 * 1024, 4096), nn.LeakyReLU(0.1), nn.Dropout(0.5), nn.Linear(4096, 7 * 7 * 30)]
    return nn.Sequential(*layers)


def test_the_paper_network_is_figure_3_with_its_parameter_count() -> None:
    with torch.device("meta"):  # 271.7M parameters: counted without allocating them
        model, reference = YOLO.paper_sized(), figure_3_by_hand()
        output = model(torch.empty(1, 3, 448, 448))
    assert tuple(output.shape[1:]) == PAPER_OUTPUT == (7, 7, 2 * 5 + 20)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 24  # "24 convolutional layers"
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 2  # "followed by 2 fully connected layers"
    assert count(model) == count(reference) == 271_703_550
    assert model.model_info()["output_size"] == [7, 7, 30]


def test_the_small_backbone_is_the_same_class_scaled_down() -> None:
    model = YOLO(backbone="small", grid_size=4, boxes_per_cell=1, num_classes=4, image_size=64)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 4, 4, 1 * 5 + 4)
    assert count(model) < 1_000_000 and model.model_info()["name"] == "yolo"
    found = model.predict(torch.rand(2, 3, 64, 64))
    assert len(found) == 2 and all(set(f) == {"boxes", "scores", "labels"} for f in found)
    assert all(len(f["scores"]) <= 16 * 4 for f in found)  # at most S * S * B boxes, each of C classes


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"backbone": "darknet"}, "backbone must be one of"),
        ({"grid_size": 0}, "grid_size must be an integer >= 1"),
        ({"boxes_per_cell": 0}, "boxes_per_cell must be an integer >= 1"),
        ({"num_classes": 0}, "num_classes must be an integer >= 1"),
        ({"backbone": "small", "image_size": 8}, "image_size 8 is too small"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"score_threshold": 1.5}, "score_threshold must be in"),
        ({"lambda_coord": -1.0}, "lambda_coord and lambda_noobj must be >= 0"),
        ({"confidence_target": "two"}, "confidence_target must be one of"),
        ({"class_names": ["a"], "num_classes": 2, "backbone": "small", "image_size": 64}, "class_names must name the 2 classes"),
    ],
)
def test_bad_arguments_are_one_line_errors(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        YOLO(**arguments)
    assert len(str(error.value).splitlines()) == 1


def test_images_of_another_size_are_one_line() -> None:
    model = YOLO(backbone="small", grid_size=4, boxes_per_cell=1, num_classes=4, image_size=64)
    with pytest.raises(ValueError, match=r"YOLO expects images of shape \(N, 3, 64, 64\), got \(2, 3, 32, 32\)"):
        model.predict(torch.rand(2, 3, 32, 32))


# ---------------------------------------------------------------------- real fits
def test_a_fit_logs_the_loss_terms_and_mean_average_precision(workdir: Path) -> None:
    cli = main(["fit", "--config", config("yolo/shapes_strength"), *QUIET, *SMOKE])
    with open(Path(cli.log_dir) / "metrics.csv") as file:
        columns = set(csv.DictReader(file).fieldnames or ())
    terms = {"loss", "coord", "size", "object", "noobject", "class"}
    detection = {"map", "map_50", "map_75", "map_small", "mar_1", "mar_100", "recall_50"}
    assert {f"train_{t}" for t in terms} | {f"val_{t}" for t in terms | detection} | {f"test_{t}" for t in detection} <= columns
    assert not any(name.endswith("classes") for name in columns)
    metrics = cli.trainer.callback_metrics
    assert 0 <= float(metrics["test_map_50"]) <= 1 and 0 <= float(metrics["test_recall_50"]) <= 1
    assert cli.claim_result is not None and cli.claim_result.observed == pytest.approx(float(metrics["test_map_50"]))
    assert cli.trainer.checkpoint_callback.monitor == "val_map_50" and cli.trainer.checkpoint_callback.mode == "max"
    figures = {p.stem for p in (Path(cli.log_dir) / "figures").glob("*.png")}
    assert {"learning_curves", "detections", "detections_test", "gradient_flow", "conv_filters", "feature_maps"} <= figures


def test_the_weakness_config_tests_on_the_crowded_cells(workdir: Path) -> None:
    cli = main(["fit", "--config", config("yolo/crowded_weakness"), *QUIET, *SMOKE, "--figures=false"])
    assert cli.datamodule.hparams.test_set == "crowded"
    assert cli.claim_result is not None and cli.claim_result.claim.metric == "test_recall_50"


def test_bf16_mixed_precision_fits(workdir: Path) -> None:
    cli = main(["fit", "--config", config("yolo/shapes_strength"), *QUIET, *SMOKE, "--figures=false", "--trainer.precision=bf16-mixed"])
    assert cli.trainer.precision == "bf16-mixed"
    assert all(torch.isfinite(value).all() for value in cli.trainer.callback_metrics.values())


def test_data_with_another_number_of_classes_is_one_line(workdir: Path) -> None:
    with pytest.raises(ValueError, match=r"num_classes=3 but the data has 4 classes: set --model.num_classes=4"):
        main(["fit", "--config", config("yolo/shapes_strength"), *QUIET, *SMOKE, "--figures=false", "--model.num_classes=3"])


def test_a_bad_option_on_the_command_line_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config("yolo/shapes_strength"), *QUIET, "--model.grid_size=0"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "grid_size must be an integer >= 1" in error and len(error.splitlines()) == 1


# ---------------------------------------------------------------------- the claims (slow)
@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_yolo_finds_the_shapes(workdir: Path, seed: int) -> None:
    """The strength: one look at the whole image finds shapes of four classes, mAP@0.5 >= 0.7 on
    the held-out images, on every seed."""
    cli = main(["fit", "--config", config("yolo/shapes_strength"), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    assert float(cli.trainer.callback_metrics["test_map_50"]) >= 0.7
    assert cli.claim_result is not None and cli.claim_result.reproduced


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
def test_a_crowded_cell_hides_all_but_one_of_its_objects(workdir: Path, seed: int) -> None:
    """The weakness (Section 2.4): with B = 1 box per cell, of k = 4 small shapes whose centres share
    a cell at most one can be found (recall <= B / k = 1/3; in fact the cell's one box lands between
    them and almost none is), while the same model finds most of
    the same shapes when each has a cell of its own."""
    cli = main(["fit", "--config", config("yolo/crowded_weakness"), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    hp = cli.datamodule.hparams
    boxes_per_cell, crowded_objects = cli.model.boxes_per_cell, hp.crowded_objects
    crowded = float(cli.trainer.callback_metrics["test_recall_50"])
    arguments = {name: value for name, value in dict(hp).items() if not name.startswith("_")}
    spread_data = ShapesDataModule(**{**arguments, "test_set": "spread"})
    spread = cli.trainer.test(cli.model, datamodule=spread_data, verbose=False)[0]["test_recall_50"]
    assert crowded <= boxes_per_cell / crowded_objects - 0.2, (crowded, spread)  # measured 0.010 to 0.037 against 1/3
    assert spread >= crowded + 0.5, (crowded, spread)  # measured 0.79 to 0.84


@pytest.mark.slow
def test_yolo_on_two_processes_under_ddp(tmp_path: Path) -> None:
    """Two gloo processes: the copies stay in step, mean average precision is computed over both
    shards and logged once per epoch, and the detections reach wandb with their boxes."""
    rank0, rank1, _ = fit_on_two_processes(
        "yolo/shapes_strength", tmp_path, "--wandb", "--trainer.max_epochs", "2", "--data.train_size", "128",
        "--data.val_size", "32", "--data.test_size", "32", "--data.batch_size", "16", timeout=300,
    )  # fmt: skip
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)
    (run_file,) = find_runs(tmp_path / "wandb_root")
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-yolo" and log.exit_code == 0
    rows = [row for row in log.history if "val_map_50" in row]
    assert [row["epoch"] for row in rows] == [0, 1] and all(0 <= row["val_map_50"] <= 1 for row in rows)
    boxes = [row for row in log.history if "detections/val/_type" in row]
    assert len(boxes) == 1 and boxes[0]["detections/val/_type"] == "images/separated" and "detections/val/all_boxes" in boxes[0]


def test_paper_sized_forward_flops_are_those_of_figure_3_built_by_hand() -> None:
    with torch.device("meta"):
        model, reference = YOLO.paper_sized(), figure_3_by_hand()
    assert count(model) == 271_703_550 and tuple(model.example_input_array.shape) == (1, 3, 448, 448)
    assert model.forward_flops() == 2 * multiply_adds(reference, model.example_input_array)
