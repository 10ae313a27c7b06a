"""ai-scratch: the history of neural networks, each model written from its paper.

Models live in one file each under the module folders (``foundations``, ``cnn_revolution``, ...);
:mod:`ai_scratch.base` holds the shared LightningModule base, :mod:`ai_scratch.numpy_adapter` the
thin adapter for NumPy-era learning rules, and :mod:`ai_scratch.cli` the ``ai-scratch`` command.
"""

__version__ = "0.1.0"
