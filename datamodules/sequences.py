"""Sequences for the recurrent and attention models: long-range toy problems, seq2seq tasks and text.

Generated, seeded (every split its own draw, from ``derive_seed(seed, split)``):

* :class:`AddingProblemDataModule`: Hochreiter and Schmidhuber's (1997) adding problem in its modern
  form: two of ``seq_len`` random values are marked, the target is their sum (regression).
* :class:`ContinualAddingDataModule`: the adding problem on a stream of segments with no end (Gers,
  Schmidhuber and Cummins, 2000): the target is the sum of the last segment's two marked values.
* :class:`TemporalOrderDataModule`: Hochreiter and Schmidhuber's (1997) temporal order problem: the
  class is the order of two symbols (X or Y) hidden far apart among distractors (4 classes).
* :class:`CopyReverseDataModule`: copy or reverse a sequence of tokens (seq2seq).
* :class:`DateFormatDataModule`: translate dates such as ``"3 May 1998"`` into ``"1998-05-03"``,
  character by character (seq2seq).

Real text, for a character-level language model:

* :class:`CharLMDataModule`: ``pydoc_data.topics``, the English help texts that ship with CPython
  (no download, the default); Karpathy's Tiny Shakespeare and WikiText-2 (raw) when downloaded.

Token conventions of the seq2seq tasks (the same in both): index 0 is ``<pad>``, 1 is ``<bos>``, 2 is
``<eos>``, the symbols follow. A source is ``symbols + <eos>``, a target ``<bos> + symbols + <eos>``,
both padded with ``<pad>`` to a fixed width, so a decoder is fed ``target[:, :-1]`` and trained to
predict ``target[:, 1:]``, with ``ignore_index=pad_index`` in the loss.

Example::

    >>> dm = CopyReverseDataModule("reverse", num_symbols=5, max_length=4, seed=0)
    >>> dm.vocab_size, dm.pad_index, dm.bos_index, dm.eos_index
    (8, 0, 1, 2)
    >>> source, target = dm.arrays("train")
    >>> source[3].tolist(), target[3].tolist()
    ([5, 4, 3, 2, 0], [1, 3, 4, 5, 2, 0])
    >>> dm.decode(source[3]), dm.decode(target[3])
    ('2 1 0', '0 1 2')
"""

from __future__ import annotations

import calendar
import datetime
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from datamodules.base import SplitDataModule
from datamodules.sampling import TensorPairs, derive_seed

SPLITS = ("train", "val", "test")
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
"""The first three tokens of every seq2seq vocabulary, at indices 0, 1 and 2."""


def _check(condition: bool, message: str) -> None:
    """Raise a one-line ``ValueError`` unless ``condition``."""
    if not condition:
        raise ValueError(message)


def _check_sizes(**sizes: int) -> None:
    for name, size in sizes.items():
        _check(isinstance(size, int) and size >= 1, f"{name} must be a positive integer, got {size!r}")


def _split_rng(seed: int, split: str) -> np.random.Generator:
    """The generator of one split: train, val and test are independent draws from one seed."""
    return np.random.default_rng(derive_seed(seed, SPLITS.index(split)))


class _TokenCodec:
    """A vocabulary ``itos`` (index to string) with ``encode`` / ``decode`` between text and indices."""

    itos: list[str]
    separator: str = ""

    @property
    def stoi(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.itos)}

    def decode(self, tokens: Sequence[int] | Tensor | np.ndarray) -> str:
        """The text of a row of indices: ``<bos>`` and ``<pad>`` are skipped, ``<eos>`` ends it."""
        words = []
        for index in (int(t) for t in np.asarray(tokens).reshape(-1)):
            token = self.itos[index]
            if token == EOS:
                break
            if token not in (PAD, BOS):
                words.append(token)
        return self.separator.join(words)


def _pad_rows(rows: list[list[int]], width: int) -> Tensor:
    """Rows of indices as one int64 tensor, each padded with ``<pad>`` (0) to ``width``."""
    out = torch.zeros(len(rows), width, dtype=torch.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.int64)
    return out


class _GeneratedSequences(SplitDataModule):
    """Train / val / test drawn independently by :meth:`generate` from ``(seed, split)``, once, in ``setup``."""

    def __init__(self, train_size: int, val_size: int, test_size: int, batch_size: int | None, seed: int) -> None:
        super().__init__(batch_size, seed)
        _check_sizes(train_size=train_size, val_size=val_size, test_size=test_size)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}

    def generate(self, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Draw the three splits (once; later calls do nothing)."""
        if self.train_dataset is not None:
            return
        for split in SPLITS:
            setattr(self, f"{split}_dataset", TensorPairs(*self.generate_split(split)))
            self.split_indices[split] = np.arange(self.sizes[split])

    def generate_split(self, split: str) -> tuple[Tensor, Tensor]:
        """One split's draw; a module whose splits differ in more than their size overrides this."""
        return self.generate(self.sizes[split], _split_rng(self.seed, split))


# ----------------------------------------------------------------------------------------------
# The adding problem
# ----------------------------------------------------------------------------------------------


def make_adding(size: int, seq_len: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """``size`` adding-problem sequences: inputs float32 ``(size, seq_len, 2)`` (value, marker) and
    targets float32 ``(size,)``, the sum of the two marked values.

    Values are uniform in [0, 1]; one marker lies uniformly in the first half (positions
    ``0 .. seq_len // 2 - 1``), the other uniformly in the second half.
    """
    values = rng.uniform(0.0, 1.0, size=(size, seq_len))
    half = seq_len // 2
    first = rng.integers(0, half, size=size)
    second = rng.integers(half, seq_len, size=size)
    markers = np.zeros((size, seq_len))
    rows = np.arange(size)
    markers[rows, first] = markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    inputs = np.stack([values, markers], axis=-1)
    return torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.float32)


class AddingProblemDataModule(_GeneratedSequences):
    """The adding problem (Hochreiter and Schmidhuber, 1997, experiment 4), in its modern form.

    Every step of a sequence of ``seq_len`` steps is a pair (value, marker). The values are uniform
    in [0, 1] and exactly two markers are 1: one at a uniform position of the first half, one in the
    second half. The target is the sum of the two marked values, so the network must keep a value
    for up to ``seq_len`` steps. This is the variant used by Le et al. (2015) and the RNN papers
    since; the original drew values from [-1, 1], put the first marker among the first ten steps and
    the second before step ``seq_len / 2``, and scaled the target to [0, 1].

    The target has mean 1 and variance 2/12 = 1/6 (two independent U[0, 1]), so always predicting
    the mean scores an MSE of about 0.167 (:attr:`baseline_mse`): a model has learnt something only
    well below it.

    Args:
        seq_len: steps per sequence (>= 2).
        train_size, val_size, test_size: sequences per split.
        batch_size: batch size of every loader; ``None``: a whole split per batch.
        seed: seed of the draws and of the training shuffle (>= 0).

    Attributes:
        input_size: 2 (value, marker), named in ``feature_names``. ``output_size``: 1 (targets have
        shape ``(N,)``).
        baseline_mse: 1/6, the MSE of the constant prediction 1.

    Raises:
        ValueError: on an argument out of range (one line that says which).
    """

    baseline_mse: float = 1.0 / 6.0

    def __init__(
        self,
        seq_len: int = 100,
        train_size: int = 2000,
        val_size: int = 500,
        test_size: int = 500,
        batch_size: int | None = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(train_size, val_size, test_size, batch_size, seed)
        _check(isinstance(seq_len, int) and seq_len >= 2, f"seq_len must be an integer >= 2, got {seq_len!r}")
        self.save_hyperparameters()
        self.seq_len = seq_len
        self.input_size, self.output_size = 2, 1
        self.feature_names: list[str] = ["value", "marker"]

    def generate(self, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        return make_adding(size, self.seq_len, rng)


# ----------------------------------------------------------------------------------------------
# The adding problem on a continual stream
# ----------------------------------------------------------------------------------------------

SEGMENT_START, MARKED = -1.0, 1.0
"""Marker values of the continual adding problem: a segment begins, a value to add."""


def make_continual_adding(
    size: int, seq_len: int, min_segment: int, max_segment: int, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """``size`` continual streams of ``seq_len`` steps: inputs float32 ``(size, seq_len, 2)`` (value,
    marker) and targets float32 ``(size,)``, the sum of the two marked values of the last segment.

    A stream is cut, from its end backwards, into segments of ``min_segment .. max_segment`` steps
    (the earliest one truncated by the stream's start). A segment's first step has the marker
    :data:`SEGMENT_START` (-1); one step in each half of it is marked :data:`MARKED` (1). A truncated
    segment shorter than 5 steps carries no markers.
    """
    values = rng.uniform(0.0, 1.0, size=(size, seq_len))
    markers = np.zeros((size, seq_len))
    targets = np.zeros(size)
    for row in range(size):
        end, last = seq_len, True
        while end > 0:
            start = max(0, end - int(rng.integers(min_segment, max_segment + 1)))
            length = end - start
            if length >= 5:
                half = length // 2
                first = start + 1 + int(rng.integers(0, half - 1))
                second = start + half + int(rng.integers(0, length - half))
                markers[row, start], markers[row, first], markers[row, second] = SEGMENT_START, MARKED, MARKED
                if last:
                    targets[row] = values[row, first] + values[row, second]
            end, last = start, False
    inputs = np.stack([values, markers], axis=-1)
    return torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.float32)


class ContinualAddingDataModule(_GeneratedSequences):
    """The adding problem on a continual stream, after Gers, Schmidhuber and Cummins (2000).

    Gers et al. asked what an LSTM does when its input never ends: the 1997 cell only adds to its
    state ``c_t = c_{t-1} + i_t * g_t``, so on a stream with no resets the state keeps what it no
    longer needs and drifts. Here a stream is a run of segments of ``min_segment .. max_segment``
    steps; each segment starts with the marker -1 and holds two values marked 1, one in each half.
    The target is the sum of the two marked values of the *last* segment: the network must drop
    what earlier segments left in its state when a new segment starts. ``test_seq_len`` makes the
    test streams longer than the training ones (Gers et al.'s question: what after many segments?).

    As in :class:`AddingProblemDataModule`, always answering the mean 1 scores an MSE of 1/6
    (:attr:`baseline_mse`).

    Args:
        seq_len: steps per training and validation stream (>= ``max_segment``).
        test_seq_len: steps per test stream; ``None``: ``seq_len``.
        min_segment, max_segment: segment lengths, drawn uniformly (5 <= min <= max).
        train_size, val_size, test_size: streams per split.
        batch_size: batch size of every loader; ``None``: a whole split per batch.
        seed: seed of the draws and of the training shuffle (>= 0).

    Attributes:
        input_size: 2 (value, marker), named in ``feature_names``. ``output_size``: 1.
        baseline_mse: 1/6, the MSE of the constant prediction 1.

    Raises:
        ValueError: on an argument out of range (one line that says which).
    """

    baseline_mse: float = 1.0 / 6.0

    def __init__(
        self,
        seq_len: int = 100,
        test_seq_len: int | None = None,
        min_segment: int = 10,
        max_segment: int = 30,
        train_size: int = 2000,
        val_size: int = 500,
        test_size: int = 500,
        batch_size: int | None = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(train_size, val_size, test_size, batch_size, seed)
        _check(isinstance(min_segment, int) and min_segment >= 5, f"min_segment must be an integer >= 5, got {min_segment!r}")
        _check(
            isinstance(max_segment, int) and max_segment >= min_segment,
            f"max_segment must be an integer >= min_segment ({min_segment}), got {max_segment!r}",
        )
        for name, length in (("seq_len", seq_len), ("test_seq_len", seq_len if test_seq_len is None else test_seq_len)):
            _check(
                isinstance(length, int) and length >= max_segment,
                f"{name} must be an integer >= max_segment ({max_segment}), got {length!r}",
            )
        self.save_hyperparameters()
        self.seq_len, self.test_seq_len = seq_len, seq_len if test_seq_len is None else test_seq_len
        self.min_segment, self.max_segment = min_segment, max_segment
        self.input_size, self.output_size = 2, 1
        self.feature_names: list[str] = ["value", "marker"]

    def generate_split(self, split: str) -> tuple[Tensor, Tensor]:
        length = self.test_seq_len if split == "test" else self.seq_len
        return make_continual_adding(self.sizes[split], length, self.min_segment, self.max_segment, _split_rng(self.seed, split))


# ----------------------------------------------------------------------------------------------
# The temporal order problem
# ----------------------------------------------------------------------------------------------

TEMPORAL_SYMBOLS = ("a", "b", "c", "d", "B", "E", "X", "Y")
"""Hochreiter and Schmidhuber's symbols: distractors a-d, start B, end E, and the relevant X and Y."""


def make_temporal_order(size: int, seq_len: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """``size`` temporal-order sequences: one-hot inputs float32 ``(size, seq_len, 8)`` over
    :data:`TEMPORAL_SYMBOLS` and int64 classes ``(size,)``: 0 = XX, 1 = XY, 2 = YX, 3 = YY."""
    symbols = rng.integers(0, 4, size=(size, seq_len))  # distractors a, b, c, d
    symbols[:, 0], symbols[:, -1] = 4, 5  # B ... E
    rows = np.arange(size)
    first = rng.integers(round(0.1 * seq_len), round(0.2 * seq_len) + 1, size=size)
    second = rng.integers(round(0.5 * seq_len), round(0.6 * seq_len) + 1, size=size)
    first_is_y, second_is_y = rng.integers(0, 2, size=size), rng.integers(0, 2, size=size)
    symbols[rows, first] = 6 + first_is_y
    symbols[rows, second] = 6 + second_is_y
    inputs = np.eye(len(TEMPORAL_SYMBOLS), dtype=np.float32)[symbols]
    return torch.as_tensor(inputs), torch.as_tensor(2 * first_is_y + second_is_y, dtype=torch.int64)


class TemporalOrderDataModule(_GeneratedSequences):
    """The temporal order problem (Hochreiter and Schmidhuber, 1997, experiment 6a): classification.

    A sequence starts with ``B``, ends with ``E`` and is filled with random distractors ``a``-``d``,
    except at two positions: one drawn uniformly from ``[0.1, 0.2] * seq_len`` and one from
    ``[0.5, 0.6] * seq_len`` (steps 10-20 and 50-60 of the paper's sequences of about 100), each of
    which holds ``X`` or ``Y``. The class is the pair in order: XX, XY, YX or YY, so the network
    must remember both symbols and which came first across some 40 distractors. Inputs are one-hot
    over the eight symbols. Unlike the paper, whose lengths vary from 100 to 110, every sequence has
    ``seq_len`` steps, so batches stack without padding.

    Args:
        seq_len: steps per sequence (>= 10, so that the two windows are apart).
        train_size, val_size, test_size: sequences per split.
        batch_size: batch size of every loader; ``None``: a whole split per batch.
        seed: seed of the draws and of the training shuffle (>= 0).

    Attributes:
        input_size: 8 (one-hot symbols, :attr:`symbols`). ``num_classes``: 4. ``class_names``:
        ``["XX", "XY", "YX", "YY"]``.

    Raises:
        ValueError: on an argument out of range (one line that says which).
    """

    def __init__(
        self,
        seq_len: int = 100,
        train_size: int = 2000,
        val_size: int = 500,
        test_size: int = 500,
        batch_size: int | None = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(train_size, val_size, test_size, batch_size, seed)
        _check(isinstance(seq_len, int) and seq_len >= 10, f"seq_len must be an integer >= 10, got {seq_len!r}")
        self.save_hyperparameters()
        self.seq_len = seq_len
        self.symbols: list[str] = list(TEMPORAL_SYMBOLS)
        self.input_size, self.num_classes = len(TEMPORAL_SYMBOLS), 4
        self.class_names: list[str] = ["XX", "XY", "YX", "YY"]

    def generate(self, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        return make_temporal_order(size, self.seq_len, rng)

    def decode(self, inputs: Tensor | np.ndarray) -> str:
        """The symbols of one one-hot sequence ``(seq_len, 8)`` as a string, e.g. ``"BacXdd...YbE"``."""
        return "".join(self.symbols[i] for i in np.asarray(inputs).argmax(axis=-1))


# ----------------------------------------------------------------------------------------------
# Copy and reversal
# ----------------------------------------------------------------------------------------------


class CopyReverseDataModule(_GeneratedSequences, _TokenCodec):
    """Copy or reverse a random sequence of tokens: the seq2seq toy task of the encoder-decoder papers.

    Each example is ``L`` symbols drawn uniformly (with repetition) from ``num_symbols``, ``L``
    uniform in ``[min_length, max_length]``. The source is ``symbols + <eos>``, the target
    ``<bos> + symbols + <eos>`` (``task="copy"``) or ``<bos> + reversed symbols + <eos>``
    (``task="reverse"``), both padded with ``<pad>``: sources to ``max_length + 1`` columns,
    targets to ``max_length + 2``. Symbol ``k`` has index ``k + 3`` and prints as ``str(k)``.

    Args:
        task: ``"copy"`` or ``"reverse"``.
        num_symbols: distinct symbols (>= 2); the vocabulary adds ``<pad>``, ``<bos>``, ``<eos>``.
        min_length, max_length: bounds of the number of symbols of an example (1 <= min <= max).
        train_size, val_size, test_size: examples per split.
        batch_size: batch size of every loader; ``None``: a whole split per batch.
        seed: seed of the draws and of the training shuffle (>= 0).

    Attributes:
        vocab_size: ``num_symbols + 3`` (source and target share the vocabulary).
        pad_index, bos_index, eos_index: 0, 1, 2. ``itos``: the token of every index.
        source_length, target_length: the padded widths.

    Raises:
        ValueError: on an argument out of range (one line that says which).
    """

    separator = " "

    def __init__(
        self,
        task: Literal["copy", "reverse"] = "copy",
        num_symbols: int = 10,
        min_length: int = 1,
        max_length: int = 10,
        train_size: int = 2000,
        val_size: int = 500,
        test_size: int = 500,
        batch_size: int | None = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(train_size, val_size, test_size, batch_size, seed)
        _check(task in ("copy", "reverse"), f"task must be 'copy' or 'reverse', got {task!r}")
        _check(isinstance(num_symbols, int) and num_symbols >= 2,
               f"num_symbols must be an integer >= 2, got {num_symbols!r}")  # fmt: skip
        _check(
            isinstance(min_length, int) and isinstance(max_length, int) and 1 <= min_length <= max_length,
            "min_length and max_length must be integers with 1 <= min_length <= max_length, "
            f"got {min_length!r} and {max_length!r}",
        )
        self.save_hyperparameters()
        self.task, self.num_symbols, self.min_length, self.max_length = task, num_symbols, min_length, max_length
        self.itos: list[str] = [*SPECIALS, *(str(k) for k in range(num_symbols))]
        self.vocab_size = len(self.itos)
        self.pad_index, self.bos_index, self.eos_index = 0, 1, 2
        self.source_length, self.target_length = max_length + 1, max_length + 2

    def generate(self, size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        lengths = rng.integers(self.min_length, self.max_length + 1, size=size)
        sources, targets = [], []
        for length in lengths:
            symbols = (rng.integers(0, self.num_symbols, size=length) + len(SPECIALS)).tolist()
            out = symbols[::-1] if self.task == "reverse" else symbols
            sources.append([*symbols, self.eos_index])
            targets.append([self.bos_index, *out, self.eos_index])
        return _pad_rows(sources, self.source_length), _pad_rows(targets, self.target_length)


# ----------------------------------------------------------------------------------------------
# Date format translation
# ----------------------------------------------------------------------------------------------

MONTHS = tuple(calendar.month_name[1:])  # English whatever the locale: the calendar module's C names
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _format_date(date: datetime.date, style: int) -> str:
    """``date`` written the ``style``-th way of :data:`DATE_FORMATS`, in English, without the locale."""
    month, day, year = MONTHS[date.month - 1], date.day, date.year
    return (
        f"{day} {month} {year}",
        f"{day} {month[:3]} {year}",
        f"{month} {day}, {year}",
        f"{WEEKDAYS[date.weekday()]}, {day} {month} {year}",
        f"{day:02d}.{date.month:02d}.{year}",
        f"{day} {month.lower()} {year}",
    )[style]


DATE_FORMATS = ("%d %B %Y", "%d %b %Y", "%B %d, %Y", "%A, %d %B %Y", "%d.%m.%Y", "%d %B %Y")
"""The ``strptime`` formats that read the human styles of :func:`_format_date` back (day numbers are
written without a leading zero except in the dotted style; month names in lower case in the last)."""

_DATE_SOURCE_CHARS = sorted(set("".join(MONTHS + WEEKDAYS) + "".join(MONTHS).lower() + "0123456789 ,."))
_DATE_TARGET_CHARS = sorted(set("0123456789-"))


class DateFormatDataModule(SplitDataModule, _TokenCodec):
    """Translate human-written dates into ISO 8601, character by character: ``"3 May 1998"`` ->
    ``"1998-05-03"``.

    A small seq2seq task with real structure (month names to numbers, reordering, a day of the week
    to ignore) on which attention shows (Bahdanau et al., 2015). Each example is a date drawn
    uniformly between 1 January ``min_year`` and 31 December ``max_year``, written in one of six
    styles drawn uniformly: ``"3 May 1998"``, ``"3 May 1998"`` with the month cut to three letters,
    ``"May 3, 1998"``, ``"Sunday, 3 May 1998"``, ``"03.05.1998"`` and ``"3 may 1998"``. The
    (date, style) pairs of the three splits are drawn together without replacement, so no pair is in
    two splits.

    Source and target have their own character vocabularies, both starting with ``<pad>``,
    ``<bos>``, ``<eos>`` and both fixed by the task (not by the draw). Sources are
    ``chars + <eos>``, targets ``<bos> + chars + <eos>``, padded with ``<pad>``.

    Args:
        min_year, max_year: the range of years, four digits (1000 <= min_year <= max_year <= 9999).
        train_size, val_size, test_size: examples per split (together at most the number of
            (date, style) pairs).
        batch_size: batch size of every loader; ``None``: a whole split per batch.
        seed: seed of the draws and of the training shuffle (>= 0).

    Attributes:
        source_vocab_size, target_vocab_size, vocab_size (= the target's); source_itos, itos (the
        target's). pad_index, bos_index, eos_index: 0, 1, 2 in both vocabularies.
        source_length, target_length: the padded widths. ``formats``: :data:`DATE_FORMATS`.
        decode (a target row), decode_source (a source row).

    Raises:
        ValueError: on an argument out of range (one line that says which).
    """

    def __init__(
        self,
        min_year: int = 1900,
        max_year: int = 2099,
        train_size: int = 4000,
        val_size: int = 500,
        test_size: int = 500,
        batch_size: int | None = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        _check_sizes(train_size=train_size, val_size=val_size, test_size=test_size)
        _check(
            isinstance(min_year, int) and isinstance(max_year, int) and 1000 <= min_year <= max_year <= 9999,
            "min_year and max_year must be integers with 1000 <= min_year <= max_year <= 9999, "
            f"got {min_year!r} and {max_year!r}",
        )
        self.first_day = datetime.date(min_year, 1, 1)
        self.num_days = (datetime.date(max_year, 12, 31) - self.first_day).days + 1
        pairs = self.num_days * len(DATE_FORMATS)
        _check(
            train_size + val_size + test_size <= pairs,
            f"train_size + val_size + test_size must be <= {pairs} (the (date, style) pairs of {min_year}-{max_year}), "
            f"got {train_size + val_size + test_size}",
        )
        self.save_hyperparameters()
        self.min_year, self.max_year = min_year, max_year
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.formats: tuple[str, ...] = DATE_FORMATS
        self.source_itos: list[str] = [*SPECIALS, *_DATE_SOURCE_CHARS]
        self.itos: list[str] = [*SPECIALS, *_DATE_TARGET_CHARS]
        self.source_vocab_size, self.target_vocab_size = len(self.source_itos), len(self.itos)
        self.vocab_size = self.target_vocab_size
        self.pad_index, self.bos_index, self.eos_index = 0, 1, 2
        self.source_length = len("Wednesday, 30 September 2000") + 1  # the widest style + <eos>
        self.target_length = len("2000-09-30") + 2  # <bos> + ISO date + <eos>

    def decode_source(self, tokens: Sequence[int] | Tensor | np.ndarray) -> str:
        """The text of a row of source indices (``decode`` reads target rows)."""
        source = _TokenCodec()
        source.itos = self.source_itos
        return source.decode(tokens)

    def pair(self, date: datetime.date, style: int) -> tuple[str, str]:
        """The (source, target) texts of one date in one style."""
        return _format_date(date, style), f"{date.year:04d}-{date.month:02d}-{date.day:02d}"

    def setup(self, stage: str | None = None) -> None:
        """Draw the (date, style) pairs of the three splits (once; later calls do nothing)."""
        if self.train_dataset is not None:
            return
        rng = np.random.default_rng(derive_seed(self.seed, 0))
        total = sum(self.sizes.values())
        chosen = rng.choice(self.num_days * len(DATE_FORMATS), size=total, replace=False)
        source_index, target_index = self.stoi_source, self.stoi
        start = 0
        for split in SPLITS:
            picks = np.sort(chosen[start : start + self.sizes[split]])  # rows in the order of split_indices
            start += self.sizes[split]
            sources, targets = [], []
            for pick in picks.tolist():
                day, style = divmod(pick, len(DATE_FORMATS))
                source, target = self.pair(self.first_day + datetime.timedelta(days=day), style)
                sources.append([*(source_index[c] for c in source), self.eos_index])
                targets.append([self.bos_index, *(target_index[c] for c in target), self.eos_index])
            pairs = TensorPairs(_pad_rows(sources, self.source_length), _pad_rows(targets, self.target_length))
            setattr(self, f"{split}_dataset", pairs)
            self.split_indices[split] = picks

    @property
    def stoi_source(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.source_itos)}


# ----------------------------------------------------------------------------------------------
# Character-level language modelling on real text
# ----------------------------------------------------------------------------------------------

TextSource = Literal["pydoc", "tiny_shakespeare", "wikitext2"]

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
WIKITEXT2_URLS = (
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip",  # Salesforce's original
    "https://huggingface.co/datasets/ggml-org/ci/resolve/main/wikitext-2-raw-v1.zip",  # a mirror of the same zip
)
_TEXT_NAMES = {"tiny_shakespeare": "Tiny Shakespeare", "wikitext2": "WikiText-2 (raw)"}


def pydoc_text() -> str:
    """CPython's own help topics (``pydoc_data.topics``, about 465,000 characters of English), joined
    in sorted key order with newlines: real text that every Python installation has."""
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def text_files(source: str, data_dir: str) -> list[Path]:
    """Where a downloadable source's text lives under ``data_dir``: one file (Tiny Shakespeare) or
    WikiText-2's official train, valid and test files."""
    if source == "tiny_shakespeare":
        return [Path(data_dir) / "tinyshakespeare" / "input.txt"]
    return [Path(data_dir) / "wikitext-2-raw" / f"wiki.{part}.raw" for part in ("train", "valid", "test")]


def download_text(source: str, data_dir: str) -> None:
    """Fetch a downloadable source into ``data_dir`` (plain HTTP with ``urllib``), unless it is there.

    Raises:
        RuntimeError: if no URL answered (no network, for instance), in one line.
    """
    files = text_files(source, data_dir)
    if all(path.is_file() for path in files):
        return
    files[0].parent.mkdir(parents=True, exist_ok=True)
    urls = (TINY_SHAKESPEARE_URL,) if source == "tiny_shakespeare" else WIKITEXT2_URLS
    errors = []
    for url in urls:
        target = files[0] if source == "tiny_shakespeare" else Path(data_dir) / "wikitext-2-raw-v1.zip"
        partial = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                out.write(response.read())
        except OSError as err:  # URLError, HTTPError and timeouts are all OSErrors
            partial.unlink(missing_ok=True)
            errors.append(f"{url}: {err}")
            continue
        partial.replace(target)
        if source == "wikitext2":
            with zipfile.ZipFile(target) as archive:  # holds wikitext-2-raw/wiki.{train,valid,test}.raw
                archive.extractall(data_dir)
        return
    raise RuntimeError(f"Could not download {_TEXT_NAMES[source]} into {data_dir!r}: " + "; ".join(errors))


def load_texts(source: str, data_dir: str, download: bool) -> list[str]:
    """The text of a source: one string (pydoc, Tiny Shakespeare) or WikiText-2's three official parts.

    Raises:
        FileNotFoundError: if a downloadable source's files are missing and ``download`` is False
            (one line that names the path and the ``--data.download`` flag).
    """
    if source == "pydoc":
        return [pydoc_text()]
    if download:
        download_text(source, data_dir)
    files = text_files(source, data_dir)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{_TEXT_NAMES[source]} not found at {missing[0]!r} and download is false: pass --data.download true "
            f"(download=True) to download it into data_dir={data_dir!r}, "
            "or --data.source pydoc for text that needs no download"
        )
    return [path.read_text(encoding="utf-8") for path in files]


class CharLMDataModule(SplitDataModule, _TokenCodec):
    """Character-level language modelling: windows of ``block_size`` characters and, for each, the
    same window one character later (the next character at every position).

    Sources (``source``):

    * ``"pydoc"`` (default): ``pydoc_data.topics``, CPython's help texts, about 465,000 characters
      of English and code; no download.
    * ``"tiny_shakespeare"``: Karpathy's char-rnn corpus, about 1.1 million characters, downloaded
      from :data:`TINY_SHAKESPEARE_URL` into ``data_dir/tinyshakespeare/input.txt``.
    * ``"wikitext2"``: WikiText-2 raw (Merity et al., 2016), its official train / valid / test files,
      downloaded as a zip into ``data_dir/wikitext-2-raw/``.

    The vocabulary is every character of the whole text (all splits), sorted, so any window of any
    split encodes; ``decode`` turns indices back into text. pydoc and Tiny Shakespeare are cut into
    contiguous parts: the first ``1 - val_fraction - test_fraction`` of the text trains, the next
    ``val_fraction`` validates, the last ``test_fraction`` tests. WikiText-2 keeps its own three
    files (the fractions are not used). In each part the windows start every ``stride`` characters
    (``block_size`` by default: consecutive windows continue each other without overlap) and never
    cross into the next part. Windows are views into one tensor of the text, so a small stride
    costs no memory.

    Args:
        source: the text (above).
        block_size: characters per window (>= 1).
        stride: characters between window starts (1 <= stride); ``None``: ``block_size``.
        val_fraction, test_fraction: shares of the text in the validation and test parts.
        data_dir: where downloadable text lives or is downloaded to.
        download: download a missing Tiny Shakespeare or WikiText-2 (in :meth:`prepare_data`).
        batch_size: batch size of every loader; ``None``: a whole split per batch.
        seed: seed of the training shuffle (>= 0).

    Attributes:
        vocab_size, itos, stoi (after :meth:`setup`): the characters. ``encode``, ``decode``.
        split_indices (after setup): the start of every window in the text of all parts together.
        split_text: ``{split: its text}`` after setup.

    Raises:
        ValueError: on an argument out of range (one line that says which), and from ``setup`` for
            a part too short for one window.
        FileNotFoundError: from ``setup``, for a downloadable source without its files and without
            ``download``.
    """

    def __init__(
        self,
        source: TextSource = "pydoc",
        block_size: int = 64,
        stride: int | None = None,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        data_dir: str = "data",
        download: bool = False,
        batch_size: int | None = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        _check(source in ("pydoc", "tiny_shakespeare", "wikitext2"),
               f"source must be one of ['pydoc', 'tiny_shakespeare', 'wikitext2'], got {source!r}")  # fmt: skip
        _check(isinstance(block_size, int) and block_size >= 1, f"block_size must be a positive integer, got {block_size!r}")
        _check(stride is None or (isinstance(stride, int) and stride >= 1),
               f"stride must be a positive integer or None, got {stride!r}")  # fmt: skip
        _check(
            0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1,
            f"val_fraction and test_fraction must lie in (0, 1) with a sum below 1, got {val_fraction} and {test_fraction}",
        )
        _check(source != "pydoc" or not download,
               "download=True needs source tiny_shakespeare or wikitext2 (pydoc ships with Python)")  # fmt: skip
        self.save_hyperparameters()
        self.source, self.block_size, self.stride = source, block_size, stride or block_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.data_dir, self.download = data_dir, download
        self.itos: list[str] = []
        self.split_text: dict[str, str] = {}

    @property
    def vocab_size(self) -> int:
        """Distinct characters of the text (sets the data up first, since the text decides it)."""
        self.setup()
        return len(self.itos)

    def encode(self, text: str) -> Tensor:
        """The int64 indices of ``text``'s characters."""
        stoi = self.stoi
        return torch.as_tensor([stoi[c] for c in text], dtype=torch.int64)

    def prepare_data(self) -> None:
        """Download the text when asked to (Lightning calls this on one process only)."""
        if self.download:
            download_text(self.source, self.data_dir)

    def _parts(self) -> list[str]:
        texts = load_texts(self.source, self.data_dir, self.download)
        if len(texts) == 3:
            return texts
        text = texts[0]
        val_start = round(len(text) * (1 - self.val_fraction - self.test_fraction))
        test_start = round(len(text) * (1 - self.test_fraction))
        return [text[:val_start], text[val_start:test_start], text[test_start:]]

    def setup(self, stage: str | None = None) -> None:
        """Read the text, build the vocabulary and the windows of every part (once)."""
        if self.train_dataset is not None:
            return
        parts = self._parts()
        self.itos = sorted(set("".join(parts)))
        offset = 0
        for split, text in zip(SPLITS, parts):
            _check(
                len(text) > self.block_size,
                f"the {split} part of {self.source!r} has {len(text)} characters, too few for one window of "
                f"block_size={self.block_size} plus its target",
            )
            data = self.encode(text)
            # unfold: views, row k = data[k * stride : k * stride + block_size]
            inputs = data[:-1].unfold(0, self.block_size, self.stride)
            targets = data[1:].unfold(0, self.block_size, self.stride)
            setattr(self, f"{split}_dataset", TensorPairs(inputs, targets))
            self.split_indices[split] = offset + np.arange(len(inputs)) * self.stride
            self.split_text[split] = text
            offset += len(text)
