"""Reusable Lightning callbacks for Weights & Biases tracking and figures.

This package imports neither ``ai_scratch`` nor ``datamodules``: copy it into another project and
attach its callbacks to any LightningModule. Each tracking and figure callback acts on global rank
zero only, makes no collective call inside rank-zero code, and, when wandb is not installed or the
Trainer has no WandbLogger, warns once and carries on (figures are still written as PNG files).
:class:`GeneralizationGap` and :class:`ChannelsLast` act on every process, as they must under DDP.

* :class:`WandbWatch`: histograms of the gradients / parameters / both, binned and named as
  ``wandb.watch`` does, taken at optimizer steps (unscaled under mixed precision).
* :class:`WandbCheckpointArtifacts`: every checkpoint as a versioned model Artifact (aliases
  ``latest``, ``best``, ``epoch-N``, ``final``; metadata epoch, step, score, model info), offline too.
* :class:`WandbDatasetArtifact`: the data of the fit (splits, sizes, class balance, a content
  digest) as a versioned ``dataset`` Artifact, the run's input; data on disk by reference.
* :class:`WandbFigureArtifact`: every figure of the fit as one ``visualization`` Artifact at its end.
* :class:`WandbRunMetadata`: tags, notes and config from the model's info and the experiment.
* :class:`GeneralizationGap`: training-set accuracy measured as on the validation set, minus the
  validation accuracy, and the same in loss (``train_eval_accuracy``, ``generalization_gap``, ...).
* :class:`ChannelsLast`: weights and image inputs in ``torch.channels_last`` (Lightning has no switch).
* :class:`StopOnNonFiniteLoss`: stop the fit at the first training loss that is NaN or infinite,
  keeping the checkpoints written before it.
* Figures (:mod:`callbacks.figures`): learning curves, confusion matrix, decision boundary,
  gradient flow, convolution filters and feature maps; PNG under the run's log dir, and
  ``wandb.Image`` when a run exists. Where a figure does not apply to a module, it says so once
  and draws nothing; a figure never fails a fit.
* Sequence models: :class:`AttentionMaps` (:mod:`callbacks.attention_maps`: the attention weights
  any model exposes), :class:`TimeStepGradients` (``||d loss / d h_t||`` against t),
  :class:`GateActivations` (LSTM / GRU gates over a sequence) and :class:`TextSamples` (generated
  text or greedy translations, a file and a ``wandb.Table``) in :mod:`callbacks.sequence_figures`.
* Detection (:mod:`callbacks.detections`): :class:`DetectionPredictions`, predicted and true
  boxes and masks as PNG and as wandb box and mask overlays; :class:`RegionProposals`
  (:mod:`callbacks.proposals`), a two-stage detector's best-ranked proposals and their recall.
* Generative models (:mod:`callbacks.samples`): :class:`SampleGrid` (a grid of images, or a
  scatter of 2-D points over the data, from any module with ``sample(n)``) and
  :class:`LatentInterpolation` (decoded points on straight lines between latent codes).

A module may offer ``model_info() -> dict`` (name, module, category, pattern, framework, ...);
the metadata and artifact callbacks use it when it is there.
"""

from callbacks.artifacts import WandbCheckpointArtifacts
from callbacks.attention_maps import AttentionMaps
from callbacks.dataset_artifact import WandbDatasetArtifact
from callbacks.detections import DetectionPredictions
from callbacks.figures import (
    ConfusionMatrix,
    ConvFilters,
    DecisionBoundary,
    FigureCallback,
    GradientFlow,
    LearningCurves,
    default_figures,
)
from callbacks.finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from callbacks.generalization import GeneralizationGap
from callbacks.memory_format import ChannelsLast
from callbacks.metadata import WandbRunMetadata, tags_from_model_info
from callbacks.proposals import RegionProposals
from callbacks.samples import LatentInterpolation, SampleGrid
from callbacks.sequence_figures import GateActivations, TextSamples, TimeStepGradients
from callbacks.visualization_artifact import WandbFigureArtifact
from callbacks.watch import WandbWatch

__all__ = [
    "AttentionMaps",
    "ChannelsLast",
    "ConfusionMatrix",
    "ConvFilters",
    "DecisionBoundary",
    "DetectionPredictions",
    "FigureCallback",
    "GateActivations",
    "GeneralizationGap",
    "GradientFlow",
    "LatentInterpolation",
    "LearningCurves",
    "NonFiniteLossError",
    "RegionProposals",
    "SampleGrid",
    "StopOnNonFiniteLoss",
    "TextSamples",
    "TimeStepGradients",
    "WandbCheckpointArtifacts",
    "WandbDatasetArtifact",
    "WandbFigureArtifact",
    "WandbRunMetadata",
    "WandbWatch",
    "default_figures",
    "tags_from_model_info",
]
