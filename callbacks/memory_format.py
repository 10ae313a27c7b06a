"""Train a convolutional network in the ``channels_last`` memory format.

Images are stored NCHW by default: all of one channel's pixels, then the next channel's. In
``channels_last`` (NHWC) the channels of one pixel sit next to each other, the layout that cuDNN's
tensor-core kernels for mixed precision and oneDNN on the CPU prefer (PyTorch's memory-format
tutorial). The values computed are the same up to rounding: only the strides differ. Whether it pays
depends on the device and the network: ``benchmarks/cnn_speed.py --channels-last`` measures it.

Lightning has no switch for it, so this callback is one: it converts the module's 4-D weights
before the optimizer is built (so that the optimizer's state takes the same layout) and the input
of every 2-D convolution on the way in (a no-op once the maps are NHWC, as a convolution with NHWC
weights passes them on): a hook on each convolution, not on ``forward``, so that a model whose
training step calls another method (GoogLeNet's ``forward_with_aux``) is covered too. It works
with any LightningModule and any ``precision``; modules without 4-D tensors are left as they were.

Example::

    trainer = Trainer(precision="bf16-mixed", callbacks=[ChannelsLast()])

or, from the command line, ``--trainer.callbacks+=ChannelsLast``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.hooks import RemovableHandle


def _to_channels_last(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.ndim == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


class ChannelsLast(Callback):
    """Keep the module's 4-D parameters and buffers, and its convolutions' inputs, in ``torch.channels_last``.

    The conversion happens in ``setup`` (before ``configure_optimizers``) for every stage, so that
    fit, validate, test and predict all see the same layout; the input hooks are removed in
    ``teardown``. A checkpoint stores values, not strides: it loads into a module in either layout.
    """

    def __init__(self) -> None:
        self._hooks: list[RemovableHandle] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
        if not self._hooks:
            self._hooks = [m.register_forward_pre_hook(self._convert_input) for m in pl_module.modules() if isinstance(m, nn.Conv2d)]

    @staticmethod
    def _convert_input(_module: nn.Module, args: tuple) -> tuple:
        return tuple(_to_channels_last(a) for a in args)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
