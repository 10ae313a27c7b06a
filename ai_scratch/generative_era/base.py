"""What every generative model shares: unlabelled batches, ``sample(n)``, the loss in its named
terms, and the quality of its samples measured against held-out data.

A classifier's steps (scores, labels, accuracy) do not fit a model of ``p(x)``, so the generative
models have this small base of their own. A subclass writes

* :meth:`GenerativeModel.sample`: ``n`` new examples, shaped and scaled like the data;
* :meth:`GenerativeModel.loss_terms`: the training objective of one batch as named terms, with the
  one to minimise under ``"loss"`` (a VAE returns ``loss``, ``reconstruction`` and ``kl``); or, for
  a model trained by several optimisers in turn (a GAN), its own ``training_step`` with Lightning's
  manual optimisation, logging through :meth:`GenerativeModel.log_terms`.

Every term is logged as ``{stage}_{name}``, a mean over the epoch weighted by batch size and
synchronised across DDP processes. At the end of a validation epoch (every
``quality_every_n_epochs``; 0: only at test) and of a test epoch, the model draws as many samples as
it has seen held-out examples (at most ``quality_samples``) and logs what
:func:`ai_scratch.generative_era.evaluation.sample_quality` measures between the two: ``mmd`` for points,
``fid`` and ``classifier_score`` for digit images. A claim such as ``test_mmd <= 0.01`` reads them.

Batches are ``(inputs, targets)`` pairs as every datamodule of the project gives them; the targets
(digit classes, or zeros) are ignored by an unconditional model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ai_scratch.base import BaseModel


def inputs_of(batch: Any) -> Tensor:
    """The examples of a batch: the first element of a pair, or the batch itself."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


class GenerativeModel(BaseModel):
    """Base LightningModule of the generative models.

    Args:
        quality_every_n_epochs: measure sample quality after every n-th validation epoch (0: only
            at test, for models whose sampling is slow).
        quality_samples: at most this many held-out examples (and as many samples) are compared.
    """

    def __init__(self, quality_every_n_epochs: int = 1, quality_samples: int = 1000) -> None:
        super().__init__(num_classes=None)
        if not isinstance(quality_every_n_epochs, int) or quality_every_n_epochs < 0:
            raise ValueError(f"quality_every_n_epochs must be an integer >= 0, got {quality_every_n_epochs!r}")
        if not isinstance(quality_samples, int) or quality_samples < 2:
            raise ValueError(f"quality_samples must be an integer >= 2, got {quality_samples!r}")
        self.quality_every_n_epochs = quality_every_n_epochs
        self.quality_samples = quality_samples
        self._held_out: list[Tensor] = []

    # ------------------------------------------------------------------ what a model writes
    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` new examples, shaped and scaled like the data, on the model's device."""
        raise NotImplementedError

    def loss_terms(self, inputs: Tensor) -> dict[str, Tensor]:
        """The objective of one batch as named scalar terms; ``"loss"`` is the one minimised."""
        raise NotImplementedError

    # ------------------------------------------------------------------ logging
    def log_terms(self, stage: str, terms: dict[str, Tensor], batch_size: int) -> None:
        """Log each term as ``{stage}_{name}``: its epoch mean, weighted by batch size, over all processes."""
        values = {f"{stage}_{name}": value.detach() for name, value in terms.items()}
        self.log_dict(values, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True, prog_bar=stage != "train")

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        inputs = inputs_of(batch)
        terms = self.loss_terms(inputs)
        self.log_terms("train", terms, len(inputs))
        return terms["loss"]

    def _evaluation_step(self, batch: Any, stage: str) -> None:
        inputs = inputs_of(batch)
        self.log_terms(stage, self.loss_terms(inputs), len(inputs))
        if self._measures_quality(stage):
            kept = sum(len(x) for x in self._held_out)
            if kept < self.quality_samples:
                self._held_out.append(inputs[: self.quality_samples - kept].detach())

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    # ------------------------------------------------------------------ sample quality
    def _measures_quality(self, stage: str) -> bool:
        if stage == "test":
            return True
        trainer = self.attached_trainer()
        if self.quality_every_n_epochs == 0 or trainer is None or trainer.sanity_checking:
            return False
        return (self.current_epoch + 1) % self.quality_every_n_epochs == 0

    def sample_quality(self, samples: Tensor, held_out: Tensor) -> dict[str, Tensor]:
        """What to measure between samples and held-out data; override to measure something else."""
        from ai_scratch.generative_era.evaluation import sample_quality

        return sample_quality(samples, held_out)

    def _log_quality(self, stage: str) -> None:
        if not self._held_out:
            return
        local = torch.cat(self._held_out)
        self._held_out = []
        # every process draws as many samples as it holds examples; the measure sees all of them
        samples = self.sample(len(local)).to(local.dtype)
        held_out, drawn = (self.all_gather(x).reshape(-1, *x.shape[1:]) for x in (local, samples))
        values = {f"{stage}_{name}": value for name, value in self.sample_quality(drawn, held_out).items()}
        self.log_dict(values, on_step=False, on_epoch=True, sync_dist=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._log_quality("val")

    def on_test_epoch_end(self) -> None:
        self._log_quality("test")
