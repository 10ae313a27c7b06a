"""Tests of the sequence datamodules: the adding and temporal order problems, copy / reversal, date
translation and character-level text. No network: the downloadable texts are checked for a clear
error when missing, and read from a file in their layout."""

from __future__ import annotations

import datetime

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from conftest import quiet_trainer
from datamodules import (
    AddingProblemDataModule,
    CharLMDataModule,
    ContinualAddingDataModule,
    CopyReverseDataModule,
    DateFormatDataModule,
    TemporalOrderDataModule,
)
from datamodules.sequences import DATE_FORMATS, MARKED, SEGMENT_START, TEMPORAL_SYMBOLS, make_adding, pydoc_text

SMALL = dict(train_size=200, val_size=50, test_size=50)


def small(cls, **kwargs):
    return cls(**{**SMALL, **kwargs})


# ----------------------------------------------------------------------------------------------
# Shapes, dtypes, sizes and determinism of every datamodule
# ----------------------------------------------------------------------------------------------

FACTORIES = {
    "adding": lambda seed: small(AddingProblemDataModule, seq_len=30, batch_size=16, seed=seed),
    "continual": lambda seed: small(ContinualAddingDataModule, seq_len=30, batch_size=16, seed=seed),
    "temporal_order": lambda seed: small(TemporalOrderDataModule, seq_len=30, batch_size=16, seed=seed),
    "copy": lambda seed: small(CopyReverseDataModule, task="copy", max_length=7, batch_size=16, seed=seed),
    "reverse": lambda seed: small(CopyReverseDataModule, task="reverse", max_length=7, batch_size=16, seed=seed),
    "dates": lambda seed: small(DateFormatDataModule, batch_size=16, seed=seed),
    "pydoc": lambda seed: CharLMDataModule(block_size=32, batch_size=16, seed=seed),
}
# (input shape after the batch dimension, input dtype, target shape, target dtype)
SHAPES = {
    "adding": ((30, 2), torch.float32, (), torch.float32),
    "continual": ((30, 2), torch.float32, (), torch.float32),
    "temporal_order": ((30, 8), torch.float32, (), torch.int64),
    "copy": ((8,), torch.int64, (9,), torch.int64),
    "reverse": ((8,), torch.int64, (9,), torch.int64),
    "dates": ((29,), torch.int64, (12,), torch.int64),
    "pydoc": ((32,), torch.int64, (32,), torch.int64),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_shapes_dtypes_sizes_and_seeded_determinism(name):
    dm = FACTORIES[name](0)
    input_shape, input_dtype, target_shape, target_dtype = SHAPES[name]
    inputs, targets = next(iter(dm.train_dataloader()))
    assert inputs.shape == (16, *input_shape) and inputs.dtype == input_dtype
    assert targets.shape == (16, *target_shape) and targets.dtype == target_dtype
    if name != "pydoc":
        assert [len(dm.arrays(split)[1]) for split in ("train", "val", "test")] == [200, 50, 50]
    # Same seed, same data in every split; the splits differ from each other.
    again = FACTORIES[name](0)
    for split in ("train", "val", "test"):
        for a, b in zip(dm.arrays(split), again.arrays(split)):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(dm.arrays("val")[0][:20], dm.arrays("test")[0][:20])
    # A different seed: different generated data; for real text, the same text in another shuffle.
    other = FACTORIES[name](1)
    if name == "pydoc":
        np.testing.assert_array_equal(dm.arrays("train")[0], other.arrays("train")[0])
        assert not torch.equal(next(iter(other.train_dataloader()))[0], inputs)
    else:
        assert not np.array_equal(dm.arrays("train")[0], other.arrays("train")[0])


def test_training_order_is_a_function_of_seed_and_epoch():
    dm = FACTORIES["copy"](0)
    loader = dm.train_dataloader()
    first = next(iter(loader))[0]
    loader.sampler.set_epoch(1)
    second = next(iter(loader))[0]
    loader.sampler.set_epoch(0)
    assert torch.equal(next(iter(loader))[0], first) and not torch.equal(second, first)
    val = dm.val_dataloader()
    assert torch.equal(next(iter(val))[0], torch.as_tensor(dm.arrays("val")[0][:16]))  # evaluation in stored order


# ----------------------------------------------------------------------------------------------
# The adding and temporal order problems
# ----------------------------------------------------------------------------------------------


def test_adding_targets_are_the_sum_of_the_marked_values_one_in_each_half():
    dm = small(AddingProblemDataModule, seq_len=40)
    assert dm.input_size == 2 and dm.output_size == 1
    x, y = dm.arrays("train")
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers[:, :20].sum(axis=1), 1.0)
    np.testing.assert_array_equal(markers[:, 20:].sum(axis=1), 1.0)
    np.testing.assert_allclose(y, (values * markers).sum(axis=1), rtol=1e-6)


def test_adding_mean_predictor_mse_is_one_sixth():
    _, train = make_adding(20_000, 10, np.random.default_rng(0))
    _, test = make_adding(20_000, 10, np.random.default_rng(1))
    mse = float(((test - train.mean()) ** 2).mean())
    # Var of a sum of two U[0, 1] is 2/12; the standard error of the estimate here is about 0.0014.
    assert abs(mse - AddingProblemDataModule.baseline_mse) < 0.006
    assert abs(float(train.mean()) - 1.0) < 0.01


def test_continual_streams_are_segments_and_the_target_is_the_last_segments_sum():
    dm = small(ContinualAddingDataModule, seq_len=60, test_seq_len=200, min_segment=6, max_segment=12)
    assert (dm.input_size, dm.output_size, dm.feature_names) == (2, 1, ["value", "marker"])
    assert [dm.arrays(split)[0].shape[1] for split in ("train", "val", "test")] == [60, 60, 200]
    for split in ("train", "test"):
        x, y = dm.arrays(split)
        for values, markers, target in zip(x[..., 0], x[..., 1], y):
            starts = np.flatnonzero(markers == SEGMENT_START)
            segments = np.split(np.arange(len(markers)), starts[starts > 0])
            for segment in segments[1:]:  # every complete segment: 6 to 12 steps, opened by -1
                assert 6 <= len(segment) <= 12 and markers[segment[0]] == SEGMENT_START
                half = len(segment) // 2
                marked = segment[markers[segment] == MARKED]
                assert len(marked) == 2 and marked[0] < segment[half] <= marked[1]  # one in each half
            last = segments[-1]
            assert target == pytest.approx(values[last][markers[last] == MARKED].sum(), rel=1e-6)
    # the segments of a stream vary, and about 1/6 of the error is left to a mean predictor
    assert len({int((x[..., 1] == SEGMENT_START).sum()) for x in dm.arrays("train")[0][:50]}) > 1
    x, y = dm.arrays("train")
    assert abs(float(((y - 1.0) ** 2).mean()) - ContinualAddingDataModule.baseline_mse) < 0.05


def test_temporal_order_class_is_the_order_of_x_and_y():
    dm = small(TemporalOrderDataModule, seq_len=50)
    assert (dm.input_size, dm.num_classes, dm.class_names) == (8, 4, ["XX", "XY", "YX", "YY"])
    x, y = dm.arrays("train")
    np.testing.assert_array_equal(x.sum(axis=-1), 1.0)  # one-hot
    for inputs, label in zip(x, y):
        text = dm.decode(inputs)
        assert text[0] == "B" and text[-1] == "E" and set(text[1:-1]) <= set("abcdXY")
        positions = [i for i, c in enumerate(text) if c in "XY"]
        assert len(positions) == 2 and 5 <= positions[0] <= 10 and 25 <= positions[1] <= 30
        assert dm.class_names[label] == "".join(text[i] for i in positions)
    assert np.bincount(y, minlength=4).min() > 25  # all four classes, about 50 each
    assert TEMPORAL_SYMBOLS == tuple(dm.symbols)


# ----------------------------------------------------------------------------------------------
# Seq2seq: copy, reversal, dates
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_copy_and_reversal_targets_are_the_source_or_its_reverse(task):
    dm = small(CopyReverseDataModule, task=task, num_symbols=12, min_length=3, max_length=9)
    assert (dm.vocab_size, dm.pad_index, dm.bos_index, dm.eos_index) == (15, 0, 1, 2)
    assert (dm.source_length, dm.target_length) == (10, 11)
    sources, targets = dm.arrays("train")
    lengths = set()
    for source, target in zip(sources, targets):
        n = int((source > 2).sum())
        lengths.add(n)
        assert source[n] == dm.eos_index and (source[n + 1 :] == dm.pad_index).all()
        assert target[0] == dm.bos_index and target[n + 1] == dm.eos_index and (target[n + 2 :] == dm.pad_index).all()
        symbols = source[:n]
        assert (symbols >= 3).all()
        np.testing.assert_array_equal(target[1 : n + 1], symbols[::-1] if task == "reverse" else symbols)
        words = dm.decode(source).split(" ")
        assert dm.decode(target).split(" ") == (words[::-1] if task == "reverse" else words)
    assert lengths == set(range(3, 10))


def test_date_pairs_decode_to_the_same_date_and_splits_do_not_share_a_pair():
    dm = small(DateFormatDataModule, min_year=1950, max_year=2000)
    styles = set()
    for split in ("train", "val", "test"):
        sources, targets = dm.arrays(split)
        assert sources.max() < dm.source_vocab_size and targets.max() < dm.target_vocab_size
        for source, target in zip(sources, targets):
            text, iso = dm.decode_source(source), dm.decode(target)
            expected = datetime.date.fromisoformat(iso)
            assert 1950 <= expected.year <= 2000
            parsed = set()
            for index, fmt in enumerate(DATE_FORMATS):
                try:
                    parsed.add(datetime.datetime.strptime(text, fmt).date())
                    styles.add(index)
                except ValueError:
                    continue
            assert parsed == {expected}, (text, iso)
    assert len(styles) >= 5  # the styles are drawn (the two "%d %B %Y" ones parse alike)
    keys = [set(dm.split_indices[split].tolist()) for split in ("train", "val", "test")]
    assert sum(map(len, keys)) == 300 and not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert dm.pair(datetime.date(1998, 5, 3), 0) == ("3 May 1998", "1998-05-03")
    assert dm.pair(datetime.date(1998, 5, 3), 3) == ("Sunday, 3 May 1998", "1998-05-03")


# ----------------------------------------------------------------------------------------------
# Character-level text
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pydoc() -> CharLMDataModule:
    dm = CharLMDataModule(block_size=50, batch_size=8)
    dm.setup()
    return dm


def test_pydoc_vocabulary_covers_the_text_and_decodes_it(pydoc):
    text = pydoc_text()
    assert len(text) > 400_000 and pydoc.itos == sorted(set(text)) and pydoc.vocab_size == len(set(text))
    assert "".join(pydoc.split_text[s] for s in ("train", "val", "test")) == text
    assert pydoc.decode(pydoc.encode(text[:1000])) == text[:1000]
    fractions = [len(pydoc.split_text[s]) / len(text) for s in ("train", "val", "test")]
    np.testing.assert_allclose(fractions, [0.9, 0.05, 0.05], atol=1e-4)


def test_pydoc_windows_are_contiguous_shifted_by_one_and_splits_do_not_overlap(pydoc):
    text = pydoc_text()
    block, ends = pydoc.block_size, []
    for split in ("train", "val", "test"):
        inputs, targets = pydoc.arrays(split)
        starts = pydoc.split_indices[split]
        np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])  # targets: inputs one character on
        np.testing.assert_array_equal(np.diff(starts), block)  # each window continues the last
        # Consecutive windows read the split's text without gap: concatenated, they are its prefix.
        assert pydoc.decode(inputs[:40].reshape(-1)) == pydoc.split_text[split][: 40 * block]
        for k in (0, len(starts) // 2, len(starts) - 1):
            assert pydoc.decode(inputs[k]) + pydoc.decode(targets[k][-1:]) == text[starts[k] : starts[k] + block + 1]
        ends.append((starts[0], starts[-1] + block + 1))  # characters read, target included
    assert ends[0][1] <= ends[1][0] and ends[1][1] <= ends[2][0]


def test_overlapping_windows_with_a_stride():
    dm = CharLMDataModule(block_size=20, stride=5)
    inputs, targets = dm.arrays("val")
    np.testing.assert_array_equal(np.diff(dm.split_indices["val"]), 5)
    np.testing.assert_array_equal(inputs[1, :15], inputs[0, 5:])
    assert len(inputs) == (len(dm.split_text["val"]) - 1 - 20) // 5 + 1


def test_tiny_shakespeare_missing_file_names_the_path_and_the_download_flag(tmp_path):
    dm = CharLMDataModule("tiny_shakespeare", data_dir=str(tmp_path))
    dm.prepare_data()  # download=False: nothing fetched
    with pytest.raises(FileNotFoundError) as err:
        dm.setup()
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "tinyshakespeare" / "input.txt") in message
    assert "--data.download true" in message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="wiki.train.raw"):
        CharLMDataModule("wikitext2", data_dir=str(tmp_path)).setup()


def test_downloadable_sources_read_files_in_their_layout(tmp_path):
    play = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text(play, encoding="utf-8")
    dm = CharLMDataModule("tiny_shakespeare", block_size=16, data_dir=str(tmp_path))
    assert dm.vocab_size == len(set(play)) and "".join(dm.split_text.values()) == play
    wiki = tmp_path / "wikitext-2-raw"
    wiki.mkdir()
    parts = {"train": " = Valkyria = \n" * 50, "valid": " = Robert = \n" * 10, "test": " = Boulter = \n" * 10}
    for part, text in parts.items():
        (wiki / f"wiki.{part}.raw").write_text(text, encoding="utf-8")
    dm = CharLMDataModule("wikitext2", block_size=16, data_dir=str(tmp_path))
    dm.setup()
    assert [dm.split_text[s] for s in ("train", "val", "test")] == list(parts.values())  # the official splits
    assert dm.decode(dm.arrays("test")[0][0]) == parts["test"][:16]


# ----------------------------------------------------------------------------------------------
# Bad arguments
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: AddingProblemDataModule(seq_len=1), "seq_len"),
        (lambda: AddingProblemDataModule(train_size=0), "train_size"),
        (lambda: AddingProblemDataModule(batch_size=0), "batch_size"),
        (lambda: ContinualAddingDataModule(min_segment=4), "min_segment"),
        (lambda: ContinualAddingDataModule(min_segment=10, max_segment=8), "max_segment"),
        (lambda: ContinualAddingDataModule(seq_len=20, max_segment=30), "seq_len"),
        (lambda: ContinualAddingDataModule(test_seq_len=10), "test_seq_len"),
        (lambda: TemporalOrderDataModule(seq_len=5), "seq_len"),
        (lambda: TemporalOrderDataModule(seed=-1), "seed"),
        (lambda: CopyReverseDataModule(task="sort"), "task"),
        (lambda: CopyReverseDataModule(num_symbols=1), "num_symbols"),
        (lambda: CopyReverseDataModule(min_length=5, max_length=4), "min_length"),
        (lambda: DateFormatDataModule(min_year=2000, max_year=1999), "min_year"),
        (lambda: DateFormatDataModule(min_year=2000, max_year=2000, train_size=3000), "train_size"),
        (lambda: CharLMDataModule(source="shakespeare"), "source"),
        (lambda: CharLMDataModule(block_size=0), "block_size"),
        (lambda: CharLMDataModule(stride=0), "stride"),
        (lambda: CharLMDataModule(val_fraction=0.6, test_fraction=0.5), "val_fraction"),
        (lambda: CharLMDataModule(download=True), "download"),
        (lambda: CharLMDataModule(block_size=100_000).setup(), "block_size"),
    ],
)
def test_bad_arguments_give_one_line_value_errors(make, match):
    with pytest.raises(ValueError, match=match) as err:
        make()
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------
# Through a real Lightning fit
# ----------------------------------------------------------------------------------------------


class TinySequenceModel(L.LightningModule):
    """A throwaway model that sizes itself from the datamodule: embeds or projects each step,
    averages over time, and predicts a number, a class, or a token at every target position."""

    def __init__(self, dm: L.LightningDataModule) -> None:
        super().__init__()
        inputs, targets = dm.train_dataset.inputs, dm.train_dataset.targets
        if inputs.is_floating_point():
            self.encode: nn.Module = nn.Linear(dm.input_size, 8)
        else:
            self.encode = nn.Embedding(getattr(dm, "source_vocab_size", dm.vocab_size), 8)
        if targets.is_floating_point():
            self.head, self.kind = nn.Linear(8, 1), "regression"
        elif targets.ndim == 1:
            self.head, self.kind = nn.Linear(8, dm.num_classes), "class"
        else:
            self.head, self.kind = nn.Linear(8, dm.vocab_size), "tokens"
        self.ignore_index = getattr(dm, "pad_index", -100)
        self.losses: list[float] = []

    def loss(self, batch):
        inputs, targets = batch
        summary = self.encode(inputs).mean(dim=1)
        if self.kind == "regression":
            return nn.functional.mse_loss(self.head(summary).squeeze(-1), targets)
        if self.kind == "class":
            return nn.functional.cross_entropy(self.head(summary), targets)
        logits = self.head(summary).unsqueeze(1).expand(-1, targets.shape[1], -1)
        return nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=self.ignore_index)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_each_datamodule_trains_through_a_real_lightning_fit(name):
    dm = FACTORIES[name](0)
    dm.setup()
    model = TinySequenceModel(dm)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 1 and len(model.losses) == 1 and np.isfinite(model.losses[0])
    assert torch.isfinite(trainer.callback_metrics["val_loss"])
