"""The text datamodule for BERT: WordPiece vocabulary, the 80/10/10 masking, segment ids, the
labelled task's balance and hold-out, the phases' loaders, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.text import (
    CLS_INDEX,
    IGNORE_INDEX,
    MASK_INDEX,
    PAD_INDEX,
    SEP_INDEX,
    SPECIAL_TOKENS,
    TextDataModule,
    mask_tokens,
    prose_sentences,
    replace_words,
    segment_ids,
    shuffle_words,
    unigram_words,
)

SMALL = dict(vocab_size=800, labels=32, val_size=20, test_size=40, batch_size=16)


@pytest.fixture(scope="module")
def text_data(tmp_path_factory: pytest.TempPathFactory) -> TextDataModule:
    data = TextDataModule(**SMALL, data_dir=str(tmp_path_factory.mktemp("data")))
    data.setup()
    return data


def random_sequences(rows: int, length: int, vocab_size: int, seed: int = 0) -> torch.Tensor:
    """``[CLS] pieces [SEP] pieces [SEP] [PAD]...`` rows of random lengths."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(len(SPECIAL_TOKENS), vocab_size, (rows, length), generator=generator)
    used = torch.randint(length // 2, length + 1, (rows,), generator=generator)
    tokens[:, 0] = CLS_INDEX
    tokens[:, length // 4] = SEP_INDEX
    for row, n in enumerate(used.tolist()):
        tokens[row, n - 1] = SEP_INDEX
        tokens[row, n:] = PAD_INDEX
    return tokens


# ---------------------------------------------------------------------- masking
def test_masking_chooses_15_percent_and_follows_the_80_10_10_rule() -> None:
    vocab_size = 500
    tokens = random_sequences(2000, 64, vocab_size)
    masked, labels = mask_tokens(tokens, vocab_size, torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    eligible = tokens >= len(SPECIAL_TOKENS)
    assert not (chosen & ~eligible).any()  # never [CLS], [SEP] or [PAD]
    assert (masked[~chosen] == tokens[~chosen]).all()  # the rest untouched
    torch.testing.assert_close(chosen.sum(1), (0.15 * eligible.sum(1).float()).round().long())  # 15% of each sequence
    assert (labels[chosen] == tokens[chosen]).all()  # the target is the original piece
    to_mask = (masked[chosen] == MASK_INDEX).float().mean()
    kept = (masked[chosen] == tokens[chosen]).float().mean()
    replaced = ((masked[chosen] != MASK_INDEX) & (masked[chosen] != tokens[chosen])).float().mean()
    assert to_mask == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / (vocab_size - 5), abs=0.01)  # a random piece can be the original
    assert replaced == pytest.approx(0.1, abs=0.01)
    assert (masked[chosen] >= len(SPECIAL_TOKENS)).logical_or(masked[chosen] == MASK_INDEX).all()


def test_masking_is_seeded() -> None:
    tokens = random_sequences(8, 32, 100)
    first = mask_tokens(tokens, 100, torch.Generator().manual_seed(3))
    again = mask_tokens(tokens, 100, torch.Generator().manual_seed(3))
    other = mask_tokens(tokens, 100, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


def test_segments_are_a_up_to_the_first_separator_and_b_after() -> None:
    tokens = torch.tensor([[CLS_INDEX, 7, 8, SEP_INDEX, 9, 10, SEP_INDEX, PAD_INDEX], [CLS_INDEX, 7, SEP_INDEX, PAD_INDEX, 0, 0, 0, 0]])
    assert segment_ids(tokens).tolist() == [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1]]


# ---------------------------------------------------------------------- vocabulary
def test_the_wordpiece_vocabulary_has_the_special_tokens_first_and_round_trips(text_data: TextDataModule) -> None:
    assert text_data.itos[:5] == list(SPECIAL_TOKENS) and text_data.vocab_size == SMALL["vocab_size"]
    text = "the assignment statement binds names to objects."
    ids = text_data.encode(text)
    assert min(ids) >= len(SPECIAL_TOKENS)
    assert text_data.decode(ids) == text
    assert any(piece.startswith("##") for piece in text_data.itos)  # word pieces, not only words


def test_the_vocabulary_is_saved_and_read_back(text_data: TextDataModule, tmp_path: Path) -> None:
    """The trainer is not deterministic across processes: a second module in the same data_dir
    reads the saved vocabulary, not a new one."""
    saved = list(Path(text_data.data_dir, "wordpiece").glob("*.json"))
    assert len(saved) == 1
    again = TextDataModule(**SMALL, data_dir=text_data.data_dir)
    again.setup()
    assert again.itos == text_data.itos
    assert len(list(Path(text_data.data_dir, "wordpiece").glob("*.json"))) == 1


# ---------------------------------------------------------------------- the labelled task
def test_the_labelled_task_is_balanced_and_held_out(text_data: TextDataModule) -> None:
    for split, size in (("train", 32), ("val", 20), ("test", 40)):
        tokens, labels = text_data.arrays(split)
        assert tokens.shape == (size, 64) and labels.sum() == size // 2  # half real, half shuffled
        assert (tokens[:, 0] == CLS_INDEX).all()
    texts = {split: {parts[0] for parts, _ in text_data.sentences[split]} for split in ("train", "val", "test")}
    assert not (texts["train"] & texts["test"]) and not (texts["val"] & texts["test"])
    parts = text_data.split_documents
    assert not set(parts["task"]) & (set(parts["pretraining"]) | set(parts["pretraining_val"]))
    # no labelled sentence is in the pre-training text
    from datamodules.text import documents

    pretraining_text = " ".join(" ".join(text.split()) for name, text in documents("pydoc") if name in parts["pretraining"])
    assert not any(parts[0] in pretraining_text for parts, label in text_data.sentences["test"] if label == 1)


def test_the_coherence_task_pairs_a_sentence_with_the_next_or_with_one_of_another_document(tmp_path: Path) -> None:
    from datamodules.text import documents, prose_sentences

    data = TextDataModule(**SMALL, task="coherence", data_dir=str(tmp_path))
    data.setup()
    following = {}
    for name, text in documents("pydoc"):
        if name in data.split_documents["task"]:
            found = prose_sentences(text)
            following.update({a: (b, name) for a, b in zip(found, found[1:])})
    for split in ("train", "val", "test"):
        examples = data.sentences[split]
        assert sum(label for _, label in examples) == len(examples) // 2
        for (a, b), label in examples:
            assert (following[a][0] == b) == bool(label)
        tokens, _ = data.arrays(split)
        assert ((torch.as_tensor(tokens) == SEP_INDEX).sum(1) == 2).all()  # [CLS] A [SEP] B [SEP]


def test_a_shuffled_sentence_has_the_same_words_in_another_order_and_its_last_word_in_place() -> None:
    sentence = "The quick brown fox jumps over the lazy dog."
    rng = np.random.default_rng(0)
    for window in (2, 4, 100):
        shuffled = shuffle_words(sentence, window, rng)
        assert shuffled != sentence and sorted(shuffled.split()) == sorted(sentence.split())
        assert shuffled.split()[-1] == "dog."
    assert all(8 <= len(s.split()) <= 40 and s.endswith(".") for s in prose_sentences("Some words.\n\n" + sentence * 2))


def test_a_sentence_with_replaced_words_keeps_its_length_punctuation_and_last_word() -> None:
    sentence = "The quick brown fox, as usual, jumps over the lazy dog."
    words, probabilities = unigram_words(["A cat sat on the mat of the house, and the dog sat on it too."])
    assert words == sorted(words) and probabilities.sum() == pytest.approx(1.0)
    assert probabilities[words.index("the")] == pytest.approx(3 / 16)  # "the" is 3 of its 16 words
    rng = np.random.default_rng(0)
    for fraction, changed in ((0.1, 1), (0.3, 3), (0.5, 5)):  # of the 10 words before the last
        corrupted = replace_words(sentence, fraction, words, probabilities, rng).split()
        original = sentence.split()
        assert len(corrupted) == len(original) and corrupted[-1] == "dog."
        differ = [(old, new) for old, new in zip(original, corrupted) if old != new]
        assert len(differ) == changed
        for old, new in differ:  # a unigram word, with the punctuation of the word it replaces
            assert new.rstrip(",") in words and new.endswith(",") == old.endswith(",")


def test_the_replaced_task_corrupts_half_of_the_sentences_with_words_of_the_pretraining_text(tmp_path: Path) -> None:
    data = TextDataModule(**SMALL, task="replaced", replace_fraction=0.3, data_dir=str(tmp_path))
    data.setup()
    words = set(data.unigram[0])
    for split in ("train", "val", "test"):
        examples = data.sentences[split]
        assert sum(label for _, label in examples) == len(examples) // 2
        for (sentence,), label in examples:
            if label == 0:  # at least one word of the pre-training prose is where another word was
                assert any(word.rstrip(",.;:") in words for word in sentence.split())
    real = {parts[0] for parts, label in data.sentences["test"] if label == 1}
    from datamodules.text import documents

    task_text = " ".join(" ".join(text.split()) for name, text in documents("pydoc") if name in data.split_documents["task"])
    assert all(sentence in task_text for sentence in real)
    assert not any(parts[0] in task_text for parts, label in data.sentences["test"] if label == 0)


def test_the_pretraining_sequences_and_pairs(tmp_path: Path) -> None:
    data = TextDataModule(**SMALL, next_sentence=True, data_dir=str(tmp_path))
    data.setup()
    train, val = data.pretraining["train"].tensors, data.pretraining["val"].tensors
    assert set(train) == {"tokens", "is_next"} and set(val) == {"tokens", "is_next", "mlm_labels"}
    assert train["is_next"].float().mean() == pytest.approx(0.5, abs=0.08)  # IsNext half of the time
    assert ((train["tokens"] == SEP_INDEX).sum(1) == 2).all()  # [CLS] A [SEP] B [SEP]
    batch = data.on_after_batch_transfer({name: t[:16] for name, t in train.items()}, 0)  # masked anew
    assert (batch["mlm_labels"] != IGNORE_INDEX).any() and (batch["tokens"] == MASK_INDEX).any()


def test_without_a_pretraining_model_the_loaders_serve_the_labelled_task(text_data: TextDataModule) -> None:
    tokens, labels = next(iter(text_data.train_dataloader()))
    assert tokens.shape == (16, 64) and labels.shape == (16,)
    assert not isinstance(text_data.val_dataloader(), list)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"labels": 1}, r"labels must be an integer >= 2"),
        ({"vocab_size": 10}, r"vocab_size must be an integer >= 100"),
        ({"source": "books"}, r"source must be 'pydoc' or 'wikitext2'"),
        ({"mask_probability": 1.5}, r"mask_probability must lie in \(0, 1\)"),
        ({"shuffle_window": 1}, r"shuffle_window must be an integer >= 2"),
        ({"task": "topics"}, r"task must be 'acceptability', 'coherence' or 'replaced'"),
        ({"replace_fraction": 1.0}, r"replace_fraction must lie in \(0, 1\)"),
        ({"download": True}, r"download=True needs source wikitext2"),
    ],
)
def test_bad_arguments_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TextDataModule(**options)


def test_too_many_labels_for_the_corpus_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"too few prose sentences for the acceptability task with labels=100000"):
        TextDataModule(labels=100_000, data_dir=str(tmp_path)).setup()


def test_wikitext_without_its_files_says_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--data.download true"):
        TextDataModule(source="wikitext2", data_dir=str(tmp_path)).setup()
