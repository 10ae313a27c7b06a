"""Keep Lightning from calling callbacks at every batch for hooks they do not implement.

Lightning calls every callback at every hook: six times per training batch (batch start,
before backward, after backward, before the optimizer step, before zero_grad, batch end), each
call with a profiler context and a state-key string built for it, about 2.5 µs on a small CPU
even when the hook is :class:`~lightning.pytorch.callbacks.Callback`'s empty default.
Twelve callbacks make that some 0.2 ms per batch: half a second of a 2,500-batch fit.

Lightning skips a hook that is not callable (``if callable(fn)`` in ``_call_callback_hooks``).
:func:`skip_unused_batch_hooks` sets the per-batch hooks that a callback inherits unchanged from
``Callback`` to ``None`` on that instance, so Lightning passes over them. Nothing else changes:
an inherited per-batch hook does nothing, the class keeps its methods (``super()`` calls still
work), and the hooks a class overrides are left alone. One of Lightning's own callbacks is known
to be idle at batch end: a ``ModelCheckpoint`` that saves by epoch only (no ``every_n_train_steps``,
no ``train_time_interval``) returns from ``on_train_batch_end`` without doing anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lightning.pytorch.callbacks import Callback, ModelCheckpoint

#: the hooks Lightning calls once per batch (per optimizer step for the optimizer hooks)
BATCH_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)


def _idle(callback: Callback, hook: str) -> bool:
    if getattr(type(callback), hook, None) is getattr(Callback, hook):
        return True
    if isinstance(callback, ModelCheckpoint) and hook == "on_train_batch_end":
        # Lightning's private settings; if they are ever renamed, the hook is simply kept
        return getattr(callback, "_every_n_train_steps", 1) < 1 and getattr(callback, "_train_time_interval", 0) is None
    return False


def skip_unused_batch_hooks(callbacks: Iterable[Callback]) -> list[str]:
    """Let Lightning pass over the per-batch hooks these callbacks do not implement.

    Returns ``"<class>.<hook>"`` for each hook set aside. A callback that does not accept new
    attributes (``__slots__``) is left as it is.
    """
    skipped = []
    for callback in callbacks:
        for hook in BATCH_HOOKS:
            if _idle(callback, hook):
                try:
                    setattr(callback, hook, None)
                except AttributeError:
                    break
                skipped.append(f"{type(callback).__name__}.{hook}")
    return skipped


class EveryNSteps:
    """Which optimizer steps are due for a callback that acts every ``n`` steps (0, n, 2n, ... by
    ``trainer.global_step``), called from ``on_before_optimizer_step`` with the callback's own ``n``.

    ``trainer.global_step`` walks Lightning's loops and strategy on each read (about 15 µs on a
    small CPU, a twentieth of a second over a 2,500-step fit, per callback that asks). Lightning
    calls ``on_before_optimizer_step`` once per step that global_step counts (automatic
    optimization with its one optimizer; in manual optimization once per ``optimizer.step()``),
    so between the due steps this counts the calls down and reads global_step only on the steps it
    expects to be due, where it also corrects the count if a step was not counted.
    """

    def __init__(self) -> None:
        self._skip: int | None = None  # calls to let pass before global_step is read again

    def start(self, trainer: Any, n: int) -> None:
        """Where a fit (or a resumed one) starts counting from."""
        self._skip = (-trainer.global_step) % n

    def due(self, trainer: Any, n: int) -> int | None:
        """The global step if this call is one of every ``n``-th, else ``None``."""
        if self._skip is None:
            self.start(trainer, n)
        if self._skip:
            self._skip -= 1
            return None
        step = trainer.global_step
        remainder = step % n
        self._skip = n - 1 if remainder == 0 else n - remainder - 1
        return step if remainder == 0 else None
