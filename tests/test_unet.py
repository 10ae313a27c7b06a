"""U-Net against Ronneberger et al. (2015): Figure 1's network (23 convolutions, 572 -> 388, its
parameters against an independent build from torch layers), valid and padded convolutions, the skip
connections and their ablation, the weighted loss of eq. 1, the instance metrics, real fits through
the CLI with their figures, and (slow) the claims of configs/unet/."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ai_scratch.applying_cnns.segmentation import InstanceSeparation, center_crop, match_sizes, touching_pairs
from ai_scratch.applying_cnns.unet import (
    PAPER_INPUT_SIDE,
    PAPER_OUTPUT_SIDE,
    UNet,
    mirror_padding_for,
    valid_input_sides,
    valid_output_side,
)
from ai_scratch.cli import main
from conftest import config, fit_on_two_processes
from wandb_log import find_runs, read_run

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
SMOKE = ["--trainer.max_epochs=1", "--data.train_size=8", "--data.val_size=4", "--data.test_size=4", "--model.base_channels=4",
         "--data.batch_size=4"]  # fmt: skip
CLAIMS = ["unet/membranes_strength", "unet/no_skip_weakness", "unet/touching_weight_map", "unet/touching_no_weight_map_weakness"]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def independent_paper_build(in_channels: int = 1, num_classes: int = 2, skip: bool = True) -> nn.ModuleList:
    """Figure 1 written out layer by layer from the paper's text, without the module under test."""
    layers = nn.ModuleList()
    widths = [64, 128, 256, 512, 1024]
    previous = in_channels
    for width in widths:  # contracting path and bottom: two 3x3 convolutions per level
        layers += [nn.Conv2d(previous, width, 3), nn.Conv2d(width, width, 3)]
        previous = width
    for width in reversed(widths[:-1]):  # expanding path: 2x2 up-convolution, then two 3x3 on the concatenation
        layers += [nn.ConvTranspose2d(2 * width, width, 2, stride=2), nn.Conv2d(2 * width if skip else width, width, 3), nn.Conv2d(width, width, 3)]
    layers.append(nn.Conv2d(64, num_classes, 1))
    return layers


@pytest.fixture(scope="module")
def paper() -> UNet:
    with torch.device("meta"):
        return UNet.paper_sized()


# ---------------------------------------------------------------------- Figure 1
def test_the_paper_network_has_the_parameters_of_an_independent_build(paper: UNet) -> None:
    with torch.device("meta"):
        reference, no_skip = independent_paper_build(), independent_paper_build(skip=False)
        ablation = UNet.paper_sized(skip_connections=False)
    assert count(paper) == count(reference) == 31_030_658
    assert count(ablation) == count(no_skip) < count(paper)
    # the skips add the contracting path's channels to the first 3x3 of each expanding step
    assert count(paper) - count(ablation) == sum(9 * width * width for width in (512, 256, 128, 64))


def test_the_paper_network_has_23_convolutional_layers(paper: UNet) -> None:
    convolutions = [m for m in paper.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convolutions) == 23  # "In total the network has 23 convolutional layers"
    assert sum(isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (2, 2) for m in convolutions) == 4
    assert all(m.padding == (0, 0) for m in convolutions if m.kernel_size == (3, 3))  # unpadded
    assert paper.head.kernel_size == (1, 1) and paper.head.out_channels == 2


def test_figure_1_sizes_572_in_388_out(paper: UNet) -> None:
    shapes: dict[str, tuple[int, ...]] = {}
    names = {"down.0": paper.down[0], "down.4": paper.down[4], "up.0": paper.up[0], "up.3": paper.up[3]}
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))) for name, module in names.items()]
    with torch.device("meta"):
        scores = paper(torch.zeros(1, 1, PAPER_INPUT_SIDE, PAPER_INPUT_SIDE))
    for hook in hooks:
        hook.remove()
    assert scores.shape == (1, 2, PAPER_OUTPUT_SIDE, PAPER_OUTPUT_SIDE) == (1, 2, 388, 388)
    # Figure 1: 568 x 568 after the first two convolutions, 28 x 28 x 1024 at the bottom, 52 x 52 x 512
    # after the first expanding step, 388 x 388 x 64 before the 1x1
    assert shapes == {"down.0": (64, 568, 568), "down.4": (1024, 28, 28), "up.0": (512, 52, 52), "up.3": (64, 388, 388)}
    assert paper.model_info()["output_size"] == [2, 388, 388] and paper.model_info()["input_size"] == [1, 572, 572]


def test_size_formulas_and_the_overlap_tile_padding() -> None:
    assert valid_output_side(572, 4) == 388 and mirror_padding_for(388, 4) == 92
    for depth in (1, 2, 3, 4):
        for side in valid_input_sides(depth, up_to=300):
            output = valid_output_side(side, depth)
            b = (output + 4 * (2**depth - 1)) / 2**depth  # output = 2^d b - 4 (2^d - 1)
            assert b == int(b) and side == 2**depth * (b + 4) + 4 * (2**depth - 1)
    assert valid_output_side(570, 4) is None  # a pooled map would be odd
    assert valid_output_side(64, 3, "same") == 64 and valid_output_side(60, 3, "same") is None


def test_he_initialisation_std_sqrt_2_over_n() -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=32, depth=2, padding="same", input_size=64)
    conv = model.down[1][2]  # 3x3, 64 -> 64 channels: N = 9 * 64
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.05)
    up = model.up[0].up  # 2x2 up-convolution from 128 channels: N = 4 * 128
    assert float(up.weight.detach().std()) == pytest.approx(math.sqrt(2 / (4 * 128)), rel=0.05)
    assert not any(m.bias.any() for m in model.modules() if isinstance(m, nn.Conv2d))


# ---------------------------------------------------------------------- options
def test_valid_convolutions_shrink_and_padded_ones_keep_the_size() -> None:
    valid = UNet(base_channels=4, depth=2, padding="valid", input_size=104)
    same = UNet(base_channels=4, depth=2, padding="same", input_size=64)
    assert valid(torch.zeros(2, 1, 104, 104)).shape == (2, 2, 64, 64)
    assert same(torch.zeros(2, 1, 64, 64)).shape == (2, 2, 64, 64)
    assert count(valid) == count(same)  # padding has no parameters
    assert valid.output_size == (2, 64, 64) and same.output_size == (2, 64, 64)


def test_without_skip_connections_the_expanding_path_ignores_the_contracting_maps() -> None:
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=2, padding="same", input_size=32, skip_connections=False)
    skipped: list[torch.Tensor] = []
    hook = model.up[1].register_forward_pre_hook(lambda m, args: skipped.append(args[1]))
    model(torch.randn(1, 1, 32, 32))
    hook.remove()
    # the first level's map reaches the last step but is not concatenated: the step sees 4 channels, not 8
    assert skipped[0].shape[1] == 4 and model.up[1].conv[0].in_channels == 4
    with_skips = UNet(base_channels=4, depth=2, padding="same", input_size=32)
    assert with_skips.up[1].conv[0].in_channels == 8


def test_the_skip_connection_carries_fine_detail_from_the_contracting_path() -> None:
    """Changing one input pixel changes the output at that pixel through the skip; without it, the
    change only arrives blurred through the pooled levels."""
    torch.manual_seed(0)
    model = UNet(base_channels=8, depth=2, padding="same", input_size=32).eval()
    image = torch.randn(1, 1, 32, 32)
    changed = image.clone()
    changed[0, 0, 16, 16] += 5
    difference = (model(changed) - model(image)).abs().sum(1)[0]
    assert difference[16, 16] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": "reflect"}, "padding must be one of"),
        ({"depth": 0}, "depth must be an integer between 1 and 6"),
        ({"base_channels": 3}, "base_channels must be an even integer"),
        ({"in_channels": 0}, "in_channels must be an integer >= 1"),
        ({"num_classes": 1}, "num_classes must be an integer >= 2"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"input_size": 570}, "input side 570 does not fit a U-Net with depth 4"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
    ],
)
def test_bad_arguments_get_one_line(kwargs: dict, message: str) -> None:
    with torch.device("meta"), pytest.raises(ValueError, match=message) as error:
        UNet(**kwargs)
    assert "\n" not in str(error.value)


def test_bad_inputs_get_one_line() -> None:
    model = UNet(base_channels=4, depth=2, input_size=104)
    with pytest.raises(ValueError, match=r"UNet expects images \(N, 1, H, W\)"):
        model(torch.zeros(1, 3, 104, 104))
    with pytest.raises(ValueError, match=r"input side 102 does not fit .* use one of \[.*100, 104"):
        model(torch.zeros(1, 1, 102, 102))
    with pytest.raises(ValueError, match="targets a dict holding 'mask'"):
        model.training_step((torch.zeros(1, 1, 104, 104), torch.zeros(1, dtype=torch.long)), 0)


# ---------------------------------------------------------------------- loss and metrics
def test_the_loss_is_eq_1_weighted_by_the_map_and_ignores_unscored_pixels() -> None:
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5, 5)
    mask = torch.randint(0, 3, (2, 5, 5))
    mask[0, 0, 0] = 255
    weights = torch.rand(2, 5, 5) * 10
    targets = {"mask": mask, "weight_map": weights}
    model = UNet(num_classes=3, base_channels=4, depth=1, padding="same", input_size=8)
    log_p = F.log_softmax(scores, dim=1)
    scored = mask != 255
    picked = log_p.gather(1, mask.clamp(max=2)[:, None])[:, 0]  # log p_l(x)(x)
    expected = -(weights * picked)[scored].sum() / scored.sum()
    assert model.criterion(scores, targets) == pytest.approx(float(expected), rel=1e-5)
    plain = UNet(num_classes=3, base_channels=4, depth=1, padding="same", input_size=8, use_weight_map=False)
    assert plain.criterion(scores, targets) == pytest.approx(float(F.cross_entropy(scores, mask, ignore_index=255)), rel=1e-5)


def test_scores_and_targets_are_cropped_about_the_centre() -> None:
    scores = torch.zeros(1, 2, 4, 4)
    mask = torch.arange(64).reshape(1, 8, 8)
    cropped_scores, targets = match_sizes(scores, {"mask": mask})
    assert cropped_scores.shape[-2:] == targets["mask"].shape[-2:] == (4, 4)
    assert targets["mask"][0, 0, 0] == 2 * 8 + 2
    assert center_crop(torch.zeros(1, 9, 9), 3, 3).shape == (1, 3, 3)
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(torch.zeros(2, 2), 3, 3)


def two_touching_cells() -> torch.Tensor:
    instances = torch.zeros(1, 20, 30, dtype=torch.long)
    instances[0, 2:18, 2:14] = 1
    instances[0, 2:18, 15:27] = 2
    return instances


def test_instance_separation_tells_merged_from_separated_cells() -> None:
    instances = two_touching_cells()
    assert touching_pairs(instances[0].numpy(), distance=3) == {(1, 2)}
    assert touching_pairs(instances[0].numpy(), distance=0) == set()
    perfect, merged, missing = InstanceSeparation(), InstanceSeparation(), InstanceSeparation()
    perfect.update((instances > 0).long(), instances)
    joined = (instances > 0).long()
    joined[0, 2:18, 14] = 1  # the membrane between them predicted as cell: one component
    merged.update(joined, instances)
    missing.update(torch.zeros_like(instances), instances)
    assert {k: float(v) for k, v in perfect.compute().items()} == {"instance_recall": 1.0, "merged_pairs": 0.0}
    assert {k: float(v) for k, v in merged.compute().items()} == {"instance_recall": 0.0, "merged_pairs": 1.0}
    assert {k: float(v) for k, v in missing.compute().items()} == {"instance_recall": 0.0, "merged_pairs": 0.0}


# ---------------------------------------------------------------------- the configs
@pytest.mark.parametrize("name", CLAIMS)
def test_the_configs_valid_output_is_the_targets_size(name: str) -> None:
    settings = yaml.safe_load(Path(config(name)).read_text())
    model, data = settings["model"]["init_args"], settings["data"]["init_args"]
    side = data["image_size"] + 2 * data.get("mirror_padding", 0)
    assert model["input_size"] == side
    assert valid_output_side(side, model["depth"], model["padding"]) == data["image_size"]


# ---------------------------------------------------------------------- through the CLI
def test_a_fit_logs_the_segmentation_metrics_and_draws_the_figures(workdir: Path) -> None:
    cli = main(["fit", "--config", config("unet/membranes_strength"), *QUIET, *SMOKE])
    with open(Path(cli.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    logged = {name: float(row[name]) for row in rows for name in row if row[name] and name[0] in "tv"}
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_iou", "val_instance_recall", "val_merged_pairs",
                 "test_iou", "test_instance_recall", "test_merged_pairs"):  # fmt: skip
        assert name in logged and math.isfinite(logged[name]), name
    assert all(0 <= logged[name] <= 1 for name in ("val_iou", "val_accuracy", "val_merged_pairs", "val_instance_recall"))
    assert cli.claim_result is not None and cli.claim_result.observed == pytest.approx(logged["test_iou"])
    figures = {p.name for p in (Path(cli.log_dir) / "figures").glob("*.png")}
    assert {"segmentation.png", "learning_curves.png", "gradient_flow.png", "conv_filters.png"} <= figures


def test_padded_and_no_skip_variants_fit_through_the_cli(workdir: Path) -> None:
    cli = main(["fit", "--config", config("unet/no_skip_weakness"), *QUIET, *SMOKE, "--figures=false",
                "--model.padding=same", "--model.input_size=64", "--data.mirror_padding=0", "--data.image_size=64"])  # fmt: skip
    assert cli.model.output_size == (2, 64, 64) and not cli.model.skip_connections
    assert 0 <= float(cli.trainer.callback_metrics["test_iou"]) <= 1


# ---------------------------------------------------------------------- the claims (slow)
def fit(name: str, seed: int, *extra: str) -> dict[str, float]:
    cli = main(["fit", "--config", config(name), *QUIET, "--figures=false", f"--seed_everything={seed}", *extra])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()
    test = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    return {k: float(v) for k, v in test.items()}


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1])
def test_skip_connections_raise_iou_by_at_least_0_08(workdir: Path, seed: int) -> None:
    with_skips = fit("unet/membranes_strength", seed)
    without = fit("unet/no_skip_weakness", seed)
    assert with_skips["test_iou"] >= without["test_iou"] + 0.08, (with_skips, without)


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1])
def test_the_weight_map_separates_touching_cells(workdir: Path, seed: int) -> None:
    weighted = fit("unet/touching_weight_map", seed)
    plain = fit("unet/touching_no_weight_map_weakness", seed)
    assert weighted["test_merged_pairs"] < plain["test_merged_pairs"], (weighted, plain)


@pytest.mark.slow
def test_unet_on_two_processes_with_wandb(tmp_path: Path) -> None:
    """Real DDP on two CPU processes: the copies stay equal, one offline wandb run holds the pixel
    metrics once per epoch and the segmentation figure, as a PNG and with wandb's mask overlays."""
    rank0, rank1, _ = fit_on_two_processes(
        "unet/membranes_strength", tmp_path, "--wandb", "--trainer.max_epochs", "2", "--model.base_channels", "4",
        "--data.train_size", "8", "--data.val_size", "4", "--data.test_size", "4", "--data.batch_size", "2",
        "--experiment.claim", "null", timeout=300,
    )  # fmt: skip
    assert rank0.keys() == rank1.keys() and any(key.startswith("down.") for key in rank0)
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6, msg=key)
    (run_file,) = find_runs(tmp_path / "wandb_root")
    log = read_run(run_file)
    assert log.project == "ai-from-scratch-unet" and log.exit_code == 0
    assert {"train_loss", "val_loss", "val_iou", "val_instance_recall", "val_merged_pairs"} <= log.history_keys
    assert [row["epoch"] for row in log.history if "val_iou" in row] == [0, 1]
    images = {key.split("/")[1] for key in log.history_keys if key.startswith("figures/")}
    assert {"segmentation", "segmentation_masks", "learning_curves"} <= images, images


def test_paper_sized_forward_flops_by_hand_from_figure_1_sizes(paper: UNet) -> None:
    """The paper gives no operation count: each 3x3 convolution costs (output side)^2 x 9 x c_in x c_out
    multiply-adds, each 2x2 up-convolution (input side)^2 x 4 x c_in x c_out, the 1x1 388^2 x 64 x 2."""
    contracting = [(570, 1, 64), (568, 64, 64), (282, 64, 128), (280, 128, 128), (138, 128, 256), (136, 256, 256),
                   (66, 256, 512), (64, 512, 512), (30, 512, 1024), (28, 1024, 1024)]  # fmt: skip
    up_convolutions = [(28, 1024, 512), (52, 512, 256), (100, 256, 128), (196, 128, 64)]
    expanding = [(54, 1024, 512), (52, 512, 512), (102, 512, 256), (100, 256, 256), (198, 256, 128), (196, 128, 128),
                 (390, 128, 64), (388, 64, 64)]  # fmt: skip
    by_hand = sum(side * side * 9 * c_in * c_out for side, c_in, c_out in contracting + expanding)
    by_hand += sum(side * side * 4 * c_in * c_out for side, c_in, c_out in up_convolutions) + 388 * 388 * 64 * 2
    assert count(paper) == 31_030_658 and tuple(paper.example_input_array.shape) == (1, 1, 572, 572)
    assert paper.forward_flops() == 2 * by_hand
