"""Callbacks that tests attach to real CLI runs in subprocesses (``--trainer.callbacks+=probes.X``)."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class SaveRankWeights(Callback):
    """At the end of training every process writes its own copy of the weights: rank<N>.pt."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, self.directory / f"rank{trainer.global_rank}.pt")


class SlowEpochs(Callback):
    """Sleep after every training epoch, so that a test can kill the fit partway."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        time.sleep(self.seconds)


class StartWhenTold(Callback):
    """Hold the fit at its start until the file ``go`` exists.

    A test can then start the process early, so that its imports (about 10 s here) overlap other
    work, and let it train only when the test is ready to watch it.
    """

    def __init__(self, go: str, timeout: float = 600.0) -> None:
        self.go = Path(go)
        self.timeout = timeout

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.go.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"StartWhenTold: {self.go} did not appear within {self.timeout:.0f} s")
            time.sleep(0.02)


class BuggyModel(L.LightningModule):
    """A model whose construction has a bug: its TypeError is not bad input, and must show as itself."""

    def __init__(self, input_dim: int = 2, learning_rate: float = 1.0) -> None:
        super().__init__()
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str' (a bug in the model)")
