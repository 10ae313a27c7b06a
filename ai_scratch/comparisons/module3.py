"""Module 3 side by side: what CNNs were made to do besides naming an image, and the trade each design made.

Every run is a shipped experiment config, fitted as ``ai-scratch fit`` fits it (same data, same
recipe, the ``--seed`` given), and the runs of one contrast are drawn as their papers drew them:

(a) **Detection: accuracy against speed** (Redmon et al., 2016, Table 1, which places every
    detector by its mAP on Pascal VOC 2007 and its frames per second, and draws the line of real
    time at 30 fps). R-CNN (``rcnn/shapes_strength``), Faster R-CNN (``faster_rcnn/shapes_strength``)
    and YOLO v1 (``yolo/shapes_strength``) on the same kind of generated shapes (64 x 64 images, 1
    to 4 shapes of four classes, 200 test images), each placed by its test mAP@0.5 and by the
    images per second of its whole inference (image in, detections out: R-CNN's selective search,
    warps and SVMs; Faster R-CNN's RPN and head; YOLO's one pass), measured after the fit on the
    tested checkpoint, one image at a time as a camera delivers them, all on the same device. The
    papers' own points are drawn hollow: R-CNN 66.0 mAP at 47 s an image (VGG-16; Girshick, 2015,
    Table 4), Faster R-CNN 73.2 at 5 fps (Ren et al., 2015, Tables 4 and 5), YOLO 63.4 at 45 fps,
    on GPUs. Look for the same order along the speed axis: each step of the history removes a
    stage (a CNN pass per region, then the separate proposals). In the papers the first step is a
    factor of about 200 and the second about 9; on these small images, where selective search finds
    only about 40 regions to warp, the first is far smaller (the JSON records both factors).

(b) **YOLO's price: small objects in groups** (Redmon et al., 2016, Section 2.4: "each grid cell
    only predicts two boxes and can only have one class ... Our model struggles with small objects
    that appear in groups"). The three trained detectors of (a) on the test images of
    ``yolo/crowded_weakness``: three shapes of the smallest size with their centres in one cell of
    YOLO's 4 x 4 grid, and, as the control, the same shapes each in a cell of its own. With B = 1
    box a cell, YOLO can find at most 1 of 3 (the dashed line); the proposal-based detectors have
    no such ceiling.

(c) **RoIAlign against RoIPool** (He et al., 2017, Table 2c: on COCO, mask AP 30.2 against 26.9,
    AP@0.75 31.8 against 26.4). The same Mask R-CNN, data and training with RoIAlign
    (``mask_rcnn/shapes_align_strength``) or Fast R-CNN's RoIPool (``mask_rcnn/roi_pool_weakness``),
    which rounds each box and bin to the 4-pixel cells of the feature map. Bars: the test mask AP,
    AP@0.5, AP@0.75 and the mean IoU of the matched masks; the paper's values marked. As in the
    paper the gain grows with the strictness of the IoU: misaligned features still find the
    object, but draw its outline in the wrong place.

(d) **U-Net with and without its skip connections** (Ronneberger et al., 2015, Section 2 and
    Figure 1). The same network, data and training (``unet/membranes_strength``,
    ``unet/no_skip_weakness``) on touching cells with thin membranes, validation IoU (mean over
    cell and membrane) after every epoch. Without the concatenated maps of the contracting path,
    the expanding path has only the coarse maps of the bottom to place a 2-pixel membrane with.

(e) **U-Net's weight map on touching cells** (Ronneberger et al., 2015, Section 3, eq. 2 and
    Figure 3). The same U-Net trained with the border-weighted loss (``unet/touching_weight_map``)
    or the plain cross-entropy (``unet/touching_no_weight_map_weakness``) on cells separated by
    faint 1-pixel membranes. Look for the disagreement of the measures: the plain loss scores the
    higher pixel IoU, yet merges most of the touching pairs into one object; the weight map keeps
    them apart, the error that matters when cells are counted.

Each run's own claim (its config's metric and threshold) is checked by its fit and listed in the
printed table. The figure is ``applying_cnns.png``, every curve and number ``applying_cnns.json``,
both under ``--out``; the runs themselves under ``<out>/<model>/<experiment>/version_N``. Run it with::

    ai-scratch compare module-3                 # runs/comparisons/module-3/applying_cnns.png
    ai-scratch compare module-3 --quick         # smoke sizes: draws everything, shows nothing
    ai-scratch compare module-3 --seed 1 --wandb
    ai-scratch compare module-3 --contrast skips   # panel (d) only: U-Net with and without skips
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ai_scratch.applying_cnns.detection import RecallAtIoU
from ai_scratch.comparisons.runs import ContrastRun, FittedRun, chosen_contrasts, comparison_parser, fit_experiment, log_comparison
from ai_scratch.registry import find_config
from callbacks import plots

NAME = "detection-masks-and-skips"
FIGURE = "applying_cnns.png"
NUMBERS = "applying_cnns.json"


#: The contrasts, in the order of the figure's panels (``detection`` draws two: (a) and (b)).
CONTRASTS = {
    "detection": "R-CNN, Faster R-CNN and YOLO: test mAP against images per second, and recall on crowded cells",
    "roi_align": "Mask R-CNN with RoIAlign against RoIPool: mask AP and mask IoU (He et al. 2017, Table 2c)",
    "skips": "U-Net with and without its skip connections: validation IoU per epoch",
    "weight_map": "U-Net with and without the weight map of eq. 2 on touching cells: merged pairs against pixel IoU",
}
RUNS = (
    ContrastRun("rcnn", "R-CNN", "rcnn/shapes_strength", "detection", "#1f77b4"),
    ContrastRun("faster-rcnn", "Faster R-CNN", "faster_rcnn/shapes_strength", "detection", "#ff7f0e"),
    ContrastRun("yolo", "YOLO v1", "yolo/shapes_strength", "detection", "#2ca02c"),
    ContrastRun("roi-pool", "RoIPool", "mask_rcnn/roi_pool_weakness", "roi_align", "#d62728"),
    ContrastRun("roi-align", "RoIAlign", "mask_rcnn/shapes_align_strength", "roi_align", "#2ca02c"),
    ContrastRun("unet", "U-Net, with skip connections", "unet/membranes_strength", "skips", "#2ca02c"),
    ContrastRun("unet-no-skips", "U-Net, no skip connections", "unet/no_skip_weakness", "skips", "#d62728"),
    ContrastRun("no-weight-map", "plain cross-entropy", "unet/touching_no_weight_map_weakness", "weight_map", "#d62728"),
    ContrastRun("weight-map", "weight map of eq. 2", "unet/touching_weight_map", "weight_map", "#2ca02c"),
)
#: The test images of YOLO's weakness (its data section: crowded cells of a 4 x 4 grid); the
#: control is the same data section with ``test_set: spread``.
CROWDED_CONFIG = "yolo/crowded_weakness"
#: The papers' own points of panel (a), Pascal VOC 2007 test, on GPUs: (mAP@0.5, images per second, source).
PAPER_DETECTORS = {
    "rcnn": (0.660, 1 / 47.0, "R-CNN (VGG-16): 66.0 mAP, 47 s an image (Girshick 2015, Table 4)"),
    "faster-rcnn": (0.732, 5.0, "Faster R-CNN (VGG-16): 73.2 mAP, 5 fps (Ren et al. 2015, Tables 4, 5)"),
    "yolo": (0.634, 45.0, "YOLO: 63.4 mAP, 45 fps (Redmon et al. 2016, Table 1)"),
}
#: YOLO's Table 1 divides the detectors at 30 frames per second: real time.
REAL_TIME_FPS = 30.0
#: He et al. 2017, Table 2c (ResNet-50-C4, COCO minival): mask AP, AP@0.5, AP@0.75.
PAPER_ROI = {"roi-pool": (0.269, 0.488, 0.264), "roi-align": (0.302, 0.510, 0.318)}
#: What each contrast reads of its runs' ``metrics.csv``: the per-epoch curve, then the test numbers.
METRICS = {
    "detection": ("val_map_50", "test_map_50", "test_map", "test_map_75", "test_recall_50"),
    "roi_align": ("val_mask_iou", "test_mask_iou", "test_mask_map", "test_mask_map_50", "test_mask_map_75", "test_map_50"),
    "skips": ("val_iou", "test_iou", "test_accuracy"),
    "weight_map": ("val_iou", "test_iou", "test_merged_pairs", "test_instance_recall"),
}
#: Smaller data sets for ``--quick`` (on top of the smoke sizes of two batches): nothing is expected
#: of the numbers, so nothing is gained from generating and evaluating the full sets.
QUICK_DATA = ("--data.init_args.train_size=64", "--data.init_args.val_size=16", "--data.init_args.test_size=16")
#: Images timed, and crowded and spread images detected, at ``--quick``.
QUICK_IMAGES = 8


# ---------------------------------------------------------------------------------------------- runs
def _config(name: str) -> dict[str, Any]:
    path = find_config(name)
    if path is None:
        raise FileNotFoundError(f"no experiment config {name!r}")
    return yaml.safe_load(Path(path).read_text())


def _class(class_path: str) -> type:
    module_name, class_name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def _instance(spec: dict[str, Any], **changes: Any) -> Any:
    """``class_path`` + ``init_args`` of a config section, built (with ``changes`` applied)."""
    return _class(spec["class_path"])(**{**spec.get("init_args", {}), **changes})


def runs_of(contrasts: Sequence[str]) -> list[ContrastRun]:
    """The runs of the chosen contrasts, in the order of :data:`RUNS`."""
    return [run for run in RUNS if run.contrast in contrasts]


def trained_detector(run: ContrastRun, fitted: FittedRun) -> torch.nn.Module:
    """The run's tested checkpoint, loaded as its config's model class, on the CPU, in eval mode."""
    model_class = _class(_config(run.config)["model"]["class_path"])
    return model_class.load_from_checkpoint(fitted.tested_checkpoint(), map_location="cpu").eval()


def test_images(fitted: FittedRun) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's test images, and one validation image to warm up with, from its datamodule as the
    fit resolved it (its saved ``config.yaml``)."""
    data = _instance(yaml.safe_load((fitted.log_dir / "config.yaml").read_text())["data"])
    data.setup("test")
    return data.datasets["test"].images, data.datasets["val"].images[:1]


def images_per_second(model: torch.nn.Module, images: torch.Tensor, warm_up: torch.Tensor) -> float:
    """Images per second of ``model.predict``, image in, detections out, one image at a time; one
    untimed call first on ``warm_up`` (a validation image: R-CNN keeps the proposals of the images
    it has seen, and none of the timed images has been seen)."""
    with torch.no_grad():
        model.predict(warm_up)
        start = time.perf_counter()
        for image in images:
            model.predict(image[None])
        return len(images) / (time.perf_counter() - start)


def recall_on(model: torch.nn.Module, test_set: str, limit: int | None) -> float:
    """Recall at IoU 0.5 of ``model`` on the test images of :data:`CROWDED_CONFIG` (``crowded``) or
    of its control (``spread``), the first ``limit`` of them (all with ``None``)."""
    data = _instance(_config(CROWDED_CONFIG)["data"], test_set=test_set)
    data.setup("test")
    dataset = data.datasets["test"]
    recall = RecallAtIoU(0.5)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    with torch.no_grad():
        for start in range(0, count, 32):
            images, targets = zip(*(dataset[i] for i in range(start, min(start + 32, count))))
            recall.update(model.predict(torch.stack(images)), list(targets))
    return float(recall.compute())


def _number_or_none(value: float) -> float | None:
    """JSON has no NaN: a metric a run never logged is ``None`` (null)."""
    return None if value is None or math.isnan(value) else float(value)


def summarise(run: ContrastRun, fitted: FittedRun) -> dict[str, Any]:
    """What the figure and the table need of one fitted run, as plain JSON-ready data: its curve
    (``(epochs completed, value)``), its test numbers, its claim and its verdict."""
    curve, *finals = METRICS[run.contrast]
    return {
        "label": run.label, "experiment": fitted.experiment, "contrast": run.contrast, "log_dir": str(fitted.log_dir),
        curve: [[epoch + 1, value] for epoch, value in fitted.curve(curve)],
        **{metric: _number_or_none(fitted.last(metric)) for metric in finals},
        "claim": str(fitted.claim_result.claim) if fitted.claim_result else None,
        "reproduced": fitted.reproduced, "seconds": round(fitted.seconds, 1),
    }  # fmt: skip


def measure_detector(run: ContrastRun, fitted: FittedRun, quick: bool) -> dict[str, Any]:
    """Panel (a)'s speed and panel (b)'s recalls of one trained detector, from its tested checkpoint."""
    model = trained_detector(run, fitted)
    images, warm_up = test_images(fitted)
    limit = QUICK_IMAGES if quick else None
    timed = images[:limit] if limit else images
    speed = images_per_second(model, timed, warm_up)
    return {
        "images_per_second": speed, "seconds_per_image": 1.0 / speed, "timed_images": len(timed),
        "crowded_recall_50": recall_on(model, "crowded", limit), "spread_recall_50": recall_on(model, "spread", limit),
    }  # fmt: skip


def run(seed: int = 0, quick: bool = False, root: str | Path = "runs/comparisons/module-3",
        contrasts: Sequence[str] = tuple(CONTRASTS)) -> dict[str, Any]:
    """Fit every run of the chosen contrasts with ``seed`` (and measure the detectors); returns
    ``{"seed", "quick", "device", "contrasts", "runs": {key: summary}}``."""
    runs: dict[str, Any] = {}
    for one in runs_of(contrasts):
        print(f"[compare] fitting {one.config} ({one.label}) ...", flush=True)
        fitted = fit_experiment(one.config, seed=seed, quick=quick, root=root, overrides=QUICK_DATA if quick else ())
        runs[one.key] = summarise(one, fitted)
        if one.contrast == "detection":
            runs[one.key].update(measure_detector(one, fitted, quick))
    results = {"seed": seed, "quick": quick, "device": f"cpu, {torch.get_num_threads()} threads", "runs": runs}
    results["contrasts"] = contrast_numbers(runs)
    return results


def contrast_numbers(runs: dict[str, Any]) -> dict[str, Any]:
    """The numbers each contrast turns on, from the runs' summaries."""
    numbers: dict[str, Any] = {}
    if "yolo" in runs:
        numbers["detection"] = {
            "yolo_over_rcnn_images_per_second": runs["yolo"]["images_per_second"] / runs["rcnn"]["images_per_second"],
            "faster_rcnn_over_rcnn_images_per_second": runs["faster-rcnn"]["images_per_second"] / runs["rcnn"]["images_per_second"],
            "yolo_crowded_ceiling": 1 / 3,
        }
    if "roi-align" in runs:
        numbers["roi_align"] = {f"align_minus_pool_{metric}": _difference(runs["roi-align"], runs["roi-pool"], metric)
                                for metric in ("test_mask_iou", "test_mask_map", "test_mask_map_50", "test_mask_map_75")}  # fmt: skip
    if "unet" in runs:
        numbers["skips"] = {"skips_minus_no_skips_test_iou": _difference(runs["unet"], runs["unet-no-skips"], "test_iou")}
    if "weight-map" in runs:
        numbers["weight_map"] = {f"weight_map_minus_plain_{metric}": _difference(runs["weight-map"], runs["no-weight-map"], metric)
                                 for metric in ("test_merged_pairs", "test_instance_recall", "test_iou")}  # fmt: skip
    return numbers


def _difference(a: dict[str, Any], b: dict[str, Any], metric: str) -> float | None:
    return None if a.get(metric) is None or b.get(metric) is None else a[metric] - b[metric]


# -------------------------------------------------------------------------------------------- figure
def _value(summary: dict[str, Any], metric: str) -> float:
    value = summary.get(metric)
    return math.nan if value is None else float(value)


def _runs(results: dict[str, Any], contrast: str) -> list[tuple[ContrastRun, dict[str, Any]]]:
    return [(run, results["runs"][run.key]) for run in RUNS if run.contrast == contrast and run.key in results["runs"]]


def _bar_labels(ax, bars, values: Sequence[float]) -> None:
    """Each bar's value over it (``n/a`` for a metric that was not logged)."""
    for bar, value in zip(bars, values):
        text = "n/a" if math.isnan(value) else f"{value:.2f}"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, 0 if math.isnan(value) else value), textcoords="offset points",
                    xytext=(0, 2), ha="center", va="bottom", fontsize=plots.LEGEND_SIZE - 1)  # fmt: skip


def _speed_panel(ax, results: dict[str, Any]) -> None:
    """YOLO's Table 1 as a plot: mAP@0.5 against images per second (log), here filled, the papers hollow."""
    for run, summary in _runs(results, "detection"):
        speed, accuracy = summary["images_per_second"], _value(summary, "test_map_50")
        ax.scatter(speed, accuracy, s=130, color=run.color, edgecolor="black", linewidth=0.7, zorder=3,
                   label=f"{run.label} here: test mAP@0.5 {accuracy:.3f}, {speed:,.1f} images/s ({1000 / speed:,.1f} ms an image)")  # fmt: skip
        ax.annotate(run.label, (speed, accuracy), textcoords="offset points", xytext=(0, 10), ha="center",
                    fontsize=plots.LABEL_SIZE, color=run.color, fontweight="bold")  # fmt: skip
        paper_map, paper_speed, source = PAPER_DETECTORS[run.key]
        ax.scatter(paper_speed, paper_map, s=110, marker="s", facecolor="none", edgecolor=run.color, linewidth=1.8, zorder=3,
                   label=f"paper, VOC 2007, GPU: {source}")  # fmt: skip
    ax.axvline(REAL_TIME_FPS, color="0.3", linestyle="--", linewidth=1.2, label=f"real time, {REAL_TIME_FPS:.0f} images/s (YOLO's Table 1 divides there)")
    ax.set_xscale("log")
    speeds = [summary["images_per_second"] for _, summary in _runs(results, "detection")]
    speeds += [paper[1] for paper in PAPER_DETECTORS.values()]
    ax.set_xlim(min(speeds) / 3, max(speeds) * 3)
    ax.set_ylim(0, 1.1)
    plots.style_axes(ax, title="(a) Detection, accuracy against speed: each stage removed makes it faster, here as in the papers\n"
                     "Redmon et al. 2016, Table 1: mAP and frames per second; filled = these runs, hollow squares = the papers",
                     xlabel=f"images per second, whole inference, one image at a time (log scale; here on {results['device']})",
                     ylabel="mAP@0.5 on the test images")  # fmt: skip
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="lower left", framealpha=0.9)


def _crowded_panel(ax, results: dict[str, Any]) -> None:
    """Recall on three small shapes in one YOLO cell against the same shapes spread out."""
    detectors = _runs(results, "detection")
    positions = np.arange(len(detectors))
    width = 0.38
    handles = []
    for offset, (metric, name, alpha, hatch) in enumerate((("crowded_recall_50", "crowded: 3 shapes in one grid cell", 1.0, ""),
                                                           ("spread_recall_50", "spread: 1 in each of 3 cells (control)", 0.45, "//"))):  # fmt: skip
        values = [_value(summary, metric) for _, summary in detectors]
        bars = ax.bar(positions + (offset - 0.5) * width, values, width, color=[run.color for run, _ in detectors],
                      alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.6)  # fmt: skip
        _bar_labels(ax, bars, values)
        handles.append(Patch(facecolor="0.6", alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.6, label=name))
    handles.append(ax.axhline(1 / 3, color="0.3", linestyle="--", linewidth=1.2, label="YOLO's ceiling in a crowded cell: B / k = 1 box / 3 shapes"))
    ax.set_xticks(positions, [run.label for run, _ in detectors], fontsize=plots.LABEL_SIZE)
    ax.set_ylim(0, 1.3)  # room for the legend above the bars
    plots.style_axes(ax, title="(b) YOLO's price: one box per grid cell misses\nsmall shapes in groups (Redmon et al. 2016, Section 2.4)",
                     ylabel="recall at IoU 0.5 (shapes of 15% of the image)")  # fmt: skip
    ax.legend(handles=handles, fontsize=plots.LEGEND_SIZE, loc="upper left", framealpha=0.9)


#: Panel (c)'s groups of bars: the metric and how the axis names it; the paper gives the first three.
ROI_GROUPS = (("test_mask_map", "mask AP\n(IoU 0.5:0.95)"), ("test_mask_map_50", "mask AP@0.5"),
              ("test_mask_map_75", "mask AP@0.75"), ("test_mask_iou", "mean IoU of\nmatched masks"))  # fmt: skip


def _roi_panel(ax, results: dict[str, Any]) -> None:
    """He et al.'s Table 2c as bars: mask AP, AP@0.5, AP@0.75 and mask IoU, RoIPool against RoIAlign."""
    runs = _runs(results, "roi_align")
    positions = np.arange(len(ROI_GROUPS))
    width = 0.8 / len(runs)
    here, paper_points = [], []
    for offset, (run, summary) in enumerate(runs):
        values = [_value(summary, metric) for metric, _ in ROI_GROUPS]
        over_epochs = " -> ".join(f"{value:.2f}" for _, value in summary["val_mask_iou"])
        bars = ax.bar(positions + (offset - (len(runs) - 1) / 2) * width, values, width, color=run.color, edgecolor="black", linewidth=0.6,
                      label=f"{run.label} here (validation mask IoU after each epoch: {over_epochs})")  # fmt: skip
        _bar_labels(ax, bars, values)
        paper = PAPER_ROI[run.key]
        points = ax.scatter(positions[: len(paper)] + (offset - (len(runs) - 1) / 2) * width, paper, marker="D", s=55, color=run.color,
                            edgecolor="black", linewidth=1.4, zorder=4,
                            label=f"{run.label}, the paper (COCO, ResNet-50-C4): AP {paper[0]:.1%}, AP50 {paper[1]:.1%}, AP75 {paper[2]:.1%}")  # fmt: skip
        here.append(bars)
        paper_points.append(points)
    ax.set_xticks(positions, [name for _, name in ROI_GROUPS], fontsize=plots.LABEL_SIZE - 1)
    ax.set_ylim(0, 1.15)
    plots.style_axes(ax, title="(c) Mask R-CNN: RoIAlign's exact sampling beats RoIPool's rounding,\n"
                     "most at the strict IoU (He et al. 2017, Table 2c: the diamonds)",
                     ylabel="test score")  # fmt: skip
    ax.legend(handles=[*here, *paper_points], fontsize=plots.LEGEND_SIZE - 0.5, loc="upper left", framealpha=0.9)


def _skips_panel(ax, results: dict[str, Any]) -> None:
    """U-Net's validation IoU against the epoch, with and without its skip connections."""
    runs = _runs(results, "skips")
    for run, summary in runs:
        curve = np.array(summary["val_iou"], dtype=float).reshape(-1, 2)
        ax.plot(curve[:, 0], curve[:, 1], "-" if run.key == "unet" else "--", color=run.color, linewidth=2, marker="o", markersize=4,
                label=f"{run.label}: test IoU {_value(summary, 'test_iou'):.3f}")  # fmt: skip
    strength = _config("unet/membranes_strength")["experiment"]["claim"]
    ax.axhline(strength["value"], color="0.3", linestyle=":", linewidth=1.2, label=f"the strength config's bar: test IoU {strength['value']:g}")
    epochs = max((len(summary["val_iou"]) for _, summary in runs), default=1)
    ax.set_xticks(range(1, epochs + 1))
    ax.set_xlim(0.5, epochs + 0.5)
    ax.set_ylim(0, 1.02)
    plots.style_axes(ax, title="(d) U-Net: without its skip connections the expanding path\ncannot place thin membranes "
                     "(Ronneberger et al. 2015, Figure 1)", xlabel="epochs completed",
                     ylabel="validation IoU (mean of cell and membrane)")  # fmt: skip
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="best", framealpha=0.9)


#: Panel (e)'s groups of bars: the metric and how the axis names it.
WEIGHT_GROUPS = (("test_merged_pairs", "touching pairs merged\n(lower is better)"), ("test_instance_recall", "cells found as\none object each"),
                 ("test_iou", "pixel IoU\n(cell, membrane)"))  # fmt: skip


def _weight_map_panel(ax, results: dict[str, Any]) -> None:
    """Merged pairs, instance recall and pixel IoU, without and with the weight map of eq. 2."""
    runs = _runs(results, "weight_map")
    positions = np.arange(len(WEIGHT_GROUPS))
    width = 0.8 / len(runs)
    for offset, (run, summary) in enumerate(runs):
        values = [_value(summary, metric) for metric, _ in WEIGHT_GROUPS]
        bars = ax.bar(positions + (offset - (len(runs) - 1) / 2) * width, values, width, color=run.color, edgecolor="black",
                      linewidth=0.6, label=f"U-Net, {run.label}")  # fmt: skip
        _bar_labels(ax, bars, values)
    ax.set_xticks(positions, [name for _, name in WEIGHT_GROUPS], fontsize=plots.LABEL_SIZE - 1)
    ax.set_ylim(0, 1.15)
    plots.style_axes(ax, title="(e) U-Net's weight map: a lower pixel IoU, but touching cells\nkept apart "
                     "(Ronneberger et al. 2015, eq. 2 and Figure 3)", ylabel="test score")  # fmt: skip
    ax.legend(fontsize=plots.LEGEND_SIZE, loc="upper left", framealpha=0.9)


#: Each panel: the contrast it belongs to and how it is drawn, in the order of the letters.
PANELS: dict[str, tuple[str, Callable[[Any, dict[str, Any]], None]]] = {
    "a": ("detection", _speed_panel), "b": ("detection", _crowded_panel), "c": ("roi_align", _roi_panel),
    "d": ("skips", _skips_panel), "e": ("weight_map", _weight_map_panel),
}  # fmt: skip


def _layout(panels: list[str]) -> tuple[list[list[str]], tuple[float, float]]:
    """The panels' places: (a) twice as wide as the others, three to a row."""
    cells = [cell for panel in panels for cell in ([panel, panel] if panel == "a" else [panel])]
    rows = [cells[i : i + 3] for i in range(0, len(cells), 3)]
    width = max(len(row) for row in rows)
    rows = [row + [row[-1]] * (width - len(row)) for row in rows]  # a short last row: its last panel stretched
    return rows, (max(6.4 * width, 10.0), 6.6 * len(rows) + 0.6)


def _notes(results: dict[str, Any]) -> list[str]:
    drawn = {run.contrast for run in RUNS if run.key in results["runs"]}
    notes = []
    if "detection" in drawn:
        notes.append("(a, b) configs/rcnn/shapes_strength, faster_rcnn/shapes_strength, yolo/shapes_strength: 64 x 64 images of 1 to 4 shapes "
                     "(circle, square, triangle, cross), the configs' test images; the speed of each run's tested checkpoint, predict() on one image "
                     "at a time. (b) the test images of configs/yolo/crowded_weakness (crowded) and the same with test_set: spread.")  # fmt: skip
    if "roi_align" in drawn:
        notes.append("(c) configs/mask_rcnn/shapes_align_strength and roi_pool_weakness: the same network and 2 epochs on 2,000 images, "
                     "the RoI operation swapped in both heads; mask IoU over the test objects found (box IoU >= 0.5).")  # fmt: skip
    if "skips" in drawn:
        notes.append("(d) configs/unet/membranes_strength and no_skip_weakness: 3 poolings, 16 base channels, 200 training images of touching "
                     "cells with 2-pixel membranes, 10 epochs.")  # fmt: skip
    if "weight_map" in drawn:
        notes.append("(e) configs/unet/touching_weight_map and touching_no_weight_map_weakness: faint 1-pixel membranes; a pair is merged when "
                     "one predicted connected component covers both of its cells.")  # fmt: skip
    quick = " QUICK: one epoch of two batches per run, the numbers mean nothing." if results["quick"] else ""
    notes.append(f"Seed {results['seed']} for every run's weights and data order.{quick}")
    return notes


#: What the figure's title says of each drawn contrast.
TITLES = {"detection": "one look is fast but misses crowds", "roi_align": "exact RoI features draw better masks",
          "skips": "skip connections place thin boundaries", "weight_map": "a border-weighted loss keeps touching cells apart"}


def figure(results: dict[str, Any]) -> Figure:
    """One panel per drawn contrast ((a) and (b) for detection), three to a row; a note names the
    configs and the seed."""
    drawn = {run.contrast for run in RUNS if run.key in results["runs"]}
    panels = [letter for letter, (contrast, _) in PANELS.items() if contrast in drawn]
    mosaic, size = _layout(panels)
    fig = plots.new_figure(*size)
    axes = fig.subplot_mosaic(mosaic)
    for letter in panels:
        PANELS[letter][1](axes[letter], results)
    plots.add_note(fig, _notes(results))
    plots.add_title(fig, "Module 3, applying CNNs: " + "; ".join(TITLES[contrast] for contrast in CONTRASTS if contrast in drawn))
    return fig


# ---------------------------------------------------------------------------------------------- main
#: The columns of the printed table, besides the run and its verdict.
TABLE_METRICS = ("test_map_50", "images_per_second", "crowded_recall_50", "test_mask_iou", "test_mask_map_75",
                 "test_iou", "test_merged_pairs")  # fmt: skip


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run: contrast, config, its test numbers, claim, verdict and seconds."""
    rows = []
    for run in RUNS:
        summary = results["runs"].get(run.key)
        if summary is None:
            continue
        row: dict[str, Any] = {"run": run.key, "contrast": run.contrast, "experiment": summary["experiment"]}
        row.update({metric: summary[metric] for metric in (*METRICS[run.contrast][1:], "images_per_second", "crowded_recall_50",
                                                           "spread_recall_50") if summary.get(metric) is not None})  # fmt: skip
        row.update(claim=summary["claim"], reproduced=summary["reproduced"], seconds=summary["seconds"])
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table on the terminal, one line per run; ``-`` where a run does not measure a column."""
    columns = [column for column in TABLE_METRICS if any(column in row for row in rows)]
    cells = [[row["run"], *(f"{row[c]:.3f}" if c in row else "-" for c in columns),
              "-" if row["reproduced"] is None else ("yes" if row["reproduced"] else "NO"), f"{row['seconds']:.0f}"] for row in rows]  # fmt: skip
    header = ["run", *columns, "reproduced", "seconds"]
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(header)]
    for line in (header, *cells):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)))


def main(args: list[str] | None = None) -> int:
    parser = comparison_parser(3, __doc__.split("\n\n")[0], CONTRASTS)
    options = parser.parse_args(args)
    contrasts = list(chosen_contrasts(options, list(CONTRASTS)))
    out = Path(options.out)
    results = run(options.seed, options.quick, root=out, contrasts=contrasts)
    path = plots.save_figure(figure(results), out / FIGURE)
    (out / NUMBERS).write_text(json.dumps(results, indent=2) + "\n")
    rows = table(results)
    print_table(rows)
    print(f"[compare] figure: {path}")
    if options.wandb:
        log_comparison(
            3, NAME, files=[path, out / NUMBERS], rows=rows, images={"figures/applying_cnns": path},
            config={"seed": options.seed, "quick": options.quick, "contrasts": {name: CONTRASTS[name] for name in contrasts},
                    "runs": {run.key: run.config for run in runs_of(contrasts)}, "device": results["device"]},
            models=sorted({run.config.split("/")[0] for run in runs_of(contrasts)}), mode=options.wandb_mode,
        )  # fmt: skip
    return 0
