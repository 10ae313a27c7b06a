"""The experiment configs, ``<model>/<experiment>.yaml`` (LightningCLI YAML), and the wandb sweeps
under ``sweeps/``. They ship with the package, so ``ai-scratch fit --config perceptron/xor_weakness``
finds them from any directory; ``ai-scratch list`` names them all."""
