"""Speed of the detectors: images per second at inference, and our Faster R-CNN's training step
against torchvision's ``FasterRCNN`` built the same way.

    python benchmarks/detection_speed.py                      # CPU: every detector, then the training step
    python benchmarks/detection_speed.py --images 8 --rounds 3 --no-training-step
    python benchmarks/detection_speed.py --device cuda --images 64 --rounds 10

**Inference.** Each detector of ``--detectors`` is built as its experiment config builds it
(untrained weights) and ``predict``\\ s the same ``--images`` test images of the shapes data (64 x 64),
proposals, thresholds and non-maximum suppression included. The ratio of each is over Faster
R-CNN's time in the same round: the history this module tells is R-CNN's 47 s an image against
Faster R-CNN's 0.2 s (Ren et al., 2015, Table 5; Girshick, 2015). R-CNN pays for its proposals
(selective search, here in NumPy on the CPU) and a CNN pass per warped region; Faster R-CNN
shares one pass of the backbone between its RPN and its head; Mask R-CNN adds its mask branch on
the best detections and pastes each mask into its box; YOLO is one pass and a grid.
R-CNN computes its proposals on every call (its cache of proposals by image is
turned off). Untrained weights leave the cost of R-CNN and YOLO unchanged; Faster R-CNN's head sees the same
number of proposals (``post_nms_top_n_test``) whatever its weights, though an untrained head keeps
more boxes above the score threshold for NMS.

**Training step.** Our ``FasterRCNN`` of ``faster_rcnn/shapes_strength`` (with RoIAlign, one
objectness logit per anchor, background RoIs from IoU 0 and all anchors in the RPN loss, the
choices torchvision makes) against torchvision's ``FasterRCNN`` given a copy of the same backbone,
the same anchors (``AnchorGenerator`` with the config's sizes and ratios), RoIAlign of the same
output size, fc6 / fc7 of the same width and the same sampling sizes, thresholds and top-N:
forward with the losses, backward and an Adam step on the same batch of the config's size. The
images are already 64 x 64, so torchvision's ``GeneralizedRCNNTransform`` (``min_size`` =
``max_size`` = 64, mean 0, std 1) leaves them as they are but still runs. Goal: parity, a ratio
of at most 1.05.

After a warm-up call of each, the sides alternate in rounds (each round in the reverse order of the
last). Printed per side: the median time, images per second and the median paired ratio with a
bootstrap 90% interval.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _timing import from_config_sections, instantiate, paired_rounds, versions  # noqa: E402

DETECTORS = ["yolo/shapes_strength", "faster_rcnn/shapes_strength", "mask_rcnn/shapes_align_strength", "rcnn/shapes_strength"]
REFERENCE = "faster_rcnn/shapes_strength"
TRAINING_CONFIG = "faster_rcnn/shapes_strength"


def shapes_batch(name: str, split: str, count: int, device: torch.device) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """The first ``count`` images (and targets) of the ``split`` of the experiment's data."""
    data = instantiate(from_config_sections(name)["data"])
    dataset = data.dataset(split)
    if count > len(dataset):
        raise SystemExit(f"--images {count}: the {split} split of {name} has {len(dataset)} images")
    examples = [dataset[i] for i in range(count)]
    images = torch.stack([image for image, _ in examples]).to(device)
    return images, [{key: value.to(device) for key, value in target.items()} for _, target in examples]


def inference_sides(detectors: list[str], images: torch.Tensor, device: torch.device) -> dict[str, tuple[Callable[[], None], int]]:
    """name -> (one ``predict`` on ``images``, the number of images)."""
    sides = {}
    for name in detectors:
        torch.manual_seed(0)
        model = instantiate(from_config_sections(name)["model"]).to(device).eval()
        if getattr(model.hparams, "cache_proposals", False):
            model.hparams.cache_proposals = False  # new images each call, as a deployed R-CNN sees them
        sides[name] = (lambda model=model: model.predict(images), len(images))
    return sides


def matched_pair(device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Our Faster R-CNN of :data:`TRAINING_CONFIG` with torchvision's choices, and torchvision's
    ``FasterRCNN`` built from a copy of its backbone with the same anchors, pooling, head and sizes."""
    from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    section = from_config_sections(TRAINING_CONFIG)["model"]
    section = {**section, "init_args": {**section["init_args"], "roi_operation": "align", "rpn_objectness": "logistic",
                                         "background_iou_low": 0.0, "ignore_cross_boundary_anchors": False}}  # fmt: skip
    torch.manual_seed(0)
    ours = instantiate(section)
    hp = ours.hparams
    size, channels = hp.roi_output_size, ours.rpn.conv.in_channels  # the backbone's output channels
    backbone = copy.deepcopy(ours.features)
    backbone.out_channels = channels
    theirs = TorchvisionFasterRCNN(
        backbone,
        min_size=hp.image_size, max_size=hp.image_size, image_mean=[0.0] * hp.in_channels, image_std=[1.0] * hp.in_channels,
        rpn_anchor_generator=AnchorGenerator(sizes=(tuple(hp.anchor_scales),), aspect_ratios=(tuple(hp.anchor_ratios),)),
        rpn_pre_nms_top_n_train=hp.pre_nms_top_n_train, rpn_post_nms_top_n_train=hp.post_nms_top_n_train,
        rpn_pre_nms_top_n_test=hp.pre_nms_top_n_test, rpn_post_nms_top_n_test=hp.post_nms_top_n_test,
        rpn_nms_thresh=hp.rpn_nms_threshold, rpn_fg_iou_thresh=hp.rpn_positive_iou, rpn_bg_iou_thresh=hp.rpn_negative_iou,
        rpn_batch_size_per_image=hp.rpn_batch_size, rpn_positive_fraction=hp.rpn_positive_fraction,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=size, sampling_ratio=2),
        box_head=TwoMLPHead(channels * size * size, hp.hidden_size), box_predictor=FastRCNNPredictor(hp.hidden_size, hp.num_classes + 1),
        box_score_thresh=hp.score_threshold, box_nms_thresh=hp.nms_threshold, box_detections_per_img=hp.max_detections,
        box_fg_iou_thresh=hp.foreground_iou, box_bg_iou_thresh=hp.foreground_iou,
        box_batch_size_per_image=hp.rois_per_image, box_positive_fraction=hp.foreground_fraction,
    )  # fmt: skip
    return ours.to(device).train(), theirs.to(device).train()


def training_sides(batch_size: int, device: torch.device) -> dict[str, tuple[Callable[[], None], int]]:
    """"ours" and "torchvision": one training step each on the same batch."""
    images, targets = shapes_batch(TRAINING_CONFIG, "train", batch_size, device)
    ours, theirs = matched_pair(device)
    learning_rate = ours.hparams.learning_rate
    our_optimizer = torch.optim.Adam(ours.parameters(), lr=learning_rate)
    their_optimizer = torch.optim.Adam(theirs.parameters(), lr=learning_rate)
    # torchvision's labels count the background as class 0
    shifted = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]

    def our_step() -> None:
        ours.loss_terms(images, targets)["loss"].backward()
        our_optimizer.step()
        our_optimizer.zero_grad(set_to_none=True)

    def their_step() -> None:
        sum(theirs(list(images), shifted).values()).backward()
        their_optimizer.step()
        their_optimizer.zero_grad(set_to_none=True)

    return {"ours": (our_step, len(images)), "torchvision": (their_step, len(images))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", nargs="*", default=DETECTORS, help="experiments whose model predicts (none: skip)")
    parser.add_argument("--images", type=int, default=16, help="test images each detector predicts per call")
    parser.add_argument("--batch-size", type=int, default=32, help="batch of the training step")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--no-training-step", action="store_true", help="skip ours against torchvision's training step")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    options = parser.parse_args(argv)
    for flag in ("images", "batch_size", "rounds"):
        if getattr(options, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    missing = [name for name in options.detectors if not (ROOT / "configs" / f"{name}.yaml").is_file()]
    if missing:
        parser.error(f"--detectors: no config {missing[0]!r} under configs/")
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")

    print(f"device {device}, {torch.get_num_threads()} threads, {options.rounds} rounds")
    if options.detectors:
        images, _ = shapes_batch(options.detectors[0], "test", options.images, device)
        reference = REFERENCE if REFERENCE in options.detectors else options.detectors[0]
        print(f"\nInference on {len(images)} test images of {tuple(images.shape[1:])}; ratios over {reference}'s time")
        print(f"{'detector':<30} {'time':>10} {'ms/image':>9} {'images/s':>9} {'ratio':>8} {'90% interval':>17}")
        for name, row in paired_rounds(inference_sides(options.detectors, images, device), reference, options.rounds, device).items():
            interval = "" if name == reference else f"[{row['low']:.2f}, {row['high']:.2f}]"
            print(f"{name:<30} {1000 * row['seconds']:>8.1f}ms {1000 * row['seconds'] / len(images):>9.2f} {row['per_second']:>9.1f} "
                  f"{row['ratio']:>8.2f} {interval:>17}", flush=True)  # fmt: skip
    if not options.no_training_step:
        print(f"\nOne training step of {TRAINING_CONFIG} on {options.batch_size} images: ours over torchvision's FasterRCNN built the same way")
        print(f"{'side':<12} {'time':>10} {'images/s':>9} {'ratio':>7} {'90% interval':>15}")
        for name, row in paired_rounds(training_sides(options.batch_size, device), "torchvision", options.rounds, device).items():
            interval = "" if name == "torchvision" else f"[{row['low']:.2f}, {row['high']:.2f}]"
            print(f"{name:<12} {1000 * row['seconds']:>8.1f}ms {row['per_second']:>9.1f} {row['ratio']:>7.2f} {interval:>15}", flush=True)
    print(versions())
    return 0


if __name__ == "__main__":
    sys.exit(main())
