"""LightningDataModules of ai-scratch, one file per family of data.

Every module here works offline by default, on data the project generates or that an installed
package ships; the real download code (torchvision's MNIST) is there for when a network is.
Splits, generators, shuffles and augmentations are all seeded, so a run, and a run resumed from a
checkpoint, sees the same data in the same order.

* :class:`ToyDataModule` (``toy.py``): two-class tabular sets: linear, xor, circles, moons, spirals,
  iris (binary pairs), breast cancer. For the Perceptron, ADALINE and the MLP.
* :class:`DigitsDataModule` (``digits.py``): handwritten digits in LeCun et al.'s (1998) 32x32
  geometry and -0.1 / 1.175 scaling, optionally distorted. For LeNet-5 and later CNNs.
* :class:`EpochSeededSampler` and :class:`TensorPairs` (``sampling.py``): the shuffle whose order is a
  function of (seed, epoch), and the in-memory dataset that hands out whole batches at once.

This package imports neither ``ai_scratch`` nor ``callbacks``.
"""

from datamodules.digits import DigitsDataModule
from datamodules.patterns import PatternsDataModule
from datamodules.sampling import EpochSeededSampler, TensorPairs
from datamodules.toy import ToyDataModule

__all__ = ["DigitsDataModule", "EpochSeededSampler", "PatternsDataModule", "TensorPairs", "ToyDataModule"]
