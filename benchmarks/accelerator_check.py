"""Check the CNNs on an accelerator: short real fits through `ai-scratch fit` on CUDA (DDP over every
GPU), on Apple's MPS, or on the CPU, with mixed precision and channels_last, then the speed pairs.

    python benchmarks/accelerator_check.py                      # whatever the machine has
    python benchmarks/accelerator_check.py --accelerator cpu --devices 2 --configs resnet/degradation_plain20
    python benchmarks/accelerator_check.py --accelerator cuda --precision bf16-mixed --speed

Each config trains for one epoch on offline digits (512 of them for the Module 2 CNNs) with `--wandb` (offline) and the
`callbacks.ChannelsLast` callback, in a fresh process, and must exit 0 and report its claim line
(the short fit is not expected to reproduce the claim; the line shows the run got to the end). The
default precision is `16-mixed` on CUDA, `bf16-mixed` on the CPU and `32` on MPS (pass another with
`--precision`); more than one device means `--trainer.strategy ddp`, and `--strategy ddp` asks for
it on one device too (a one-process NCCL group and the DDP wrapper: the code path of a multi-GPU
run, on a machine with one GPU). With `--speed`, benchmarks/cnn_speed.py then compares our training
step with torchvision's on the same device.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = (
    "lenet5/mnist",
    "alexnet/relu_strength",
    "vgg/depth_strength",
    "googlenet/fewer_parameters_strength",
    "resnet/degradation_resnet32",
)
DEFAULT_PRECISION = {"cuda": "16-mixed", "mps": "32", "cpu": "bf16-mixed"}


def detect() -> tuple[str, int]:
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.cuda.device_count()
    if torch.backends.mps.is_available():
        return "mps", 1
    return "cpu", 1


def fit_command(config: str, accelerator: str, devices: int, precision: str, strategy: str) -> list[str]:
    command = [
        sys.executable, "-m", "ai_scratch", "fit", "--config", str(ROOT / "configs" / f"{config}.yaml"), "--wandb",
        "--trainer.accelerator", accelerator, "--trainer.devices", str(devices), "--trainer.precision", precision,
        "--trainer.strategy", strategy, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks+=callbacks.ChannelsLast",
    ]  # fmt: skip
    if config.startswith("googlenet"):
        command += ["--model.aux_logits", "true"]  # the auxiliary heads, as the paper trained
    if "VisionDataModule" in (ROOT / "configs" / f"{config}.yaml").read_text():
        command += ["--data.train_size", "512"]  # LeNet-5's digits: one epoch of its 4,000 is short enough
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", choices=["cuda", "mps", "cpu"], help="default: what the machine has")
    parser.add_argument("--devices", type=int, help="default: every CUDA device, else 1")
    parser.add_argument("--precision", help="default: 16-mixed on CUDA, bf16-mixed on the CPU, 32 on MPS")
    parser.add_argument("--strategy", help="the Trainer's strategy; default: ddp on more than one device, else auto")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--speed", action="store_true", help="then run benchmarks/cnn_speed.py on the device")
    options = parser.parse_args(argv)
    found, count = detect()
    accelerator = options.accelerator or found
    devices = options.devices or (count if accelerator == "cuda" else 1)
    precision = options.precision or DEFAULT_PRECISION[accelerator]
    strategy = options.strategy or ("ddp" if devices > 1 else "auto")
    print(f"{accelerator} x {devices}, strategy {strategy}, precision {precision}, channels_last", flush=True)

    failures = 0
    with tempfile.TemporaryDirectory() as workdir:
        env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=workdir, WANDB_SILENT="true")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        for config in options.configs:
            start = time.perf_counter()
            result = subprocess.run(
                fit_command(config, accelerator, devices, precision, strategy), cwd=workdir, env=env, capture_output=True, text=True
            )
            claim = next((line for line in result.stdout.splitlines() if line.startswith("[claim]")), "")
            ok = result.returncode == 0 and bool(claim)
            failures += not ok
            print(f"{'ok ' if ok else 'FAIL'} {config:<38} {time.perf_counter() - start:6.1f} s  {claim[:90]}", flush=True)
            if not ok:
                print(result.stderr[-2000:], flush=True)
    if options.speed:
        speed = [sys.executable, str(ROOT / "benchmarks" / "cnn_speed.py"), "--device", accelerator]
        if precision != "32":
            speed += ["--precision", precision, "--channels-last"]
        if accelerator != "cpu":
            speed += ["--batch-size", "64", "--rounds", "10", "--steps", "5"]
        failures += subprocess.run(speed).returncode != 0
    print("all passed" if not failures else f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
