"""Text for BERT: a WordPiece vocabulary, masked-language-model pre-training, and a small labelled task.

BERT (Devlin et al., 2018) learns in two stages: *pre-training* on unlabelled text (masked language
modelling, and next-sentence prediction), then *fine-tuning* on a labelled task that has few labels.
:class:`TextDataModule` serves both from one corpus:

* the **corpus** is cut by document (a pydoc topic, a WikiText article) into three parts: the
  documents of the labelled task (held out: pre-training never reads their sentences), the
  pre-training validation documents, and the pre-training documents (the rest);
* a **WordPiece** vocabulary (Wu et al., 2016; BERT's 30,000 tokens, here a few thousand) is learnt
  on the pre-training documents with the ``tokenizers`` library, lower-cased as BERT-uncased, with
  the special tokens ``[PAD]`` (0), ``[UNK]`` (1), ``[CLS]`` (2), ``[SEP]`` (3), ``[MASK]`` (4);
* the **pre-training sequences** are windows of ``max_length - 2`` word pieces of the pre-training
  documents, ``[CLS] window [SEP]``; with ``next_sentence`` the window is cut in two, ``[CLS] A [SEP]
  B [SEP]``, and half of the time B is replaced by a span of another document (Appendix A.1: "50%
  of the time B is the actual next sentence that follows A, and 50% of the time it is a random
  sentence from the corpus");
* the **masking** (Section 3.1, "Task #1: Masked LM"; Appendix A.1): 15% of the word pieces of a
  sequence are chosen (never ``[CLS]``, ``[SEP]`` or ``[PAD]``); a chosen piece becomes ``[MASK]``
  80% of the time, a random piece 10% of the time, and stays itself 10% of the time, and the model
  must name the original piece at every chosen position. :func:`mask_tokens` draws it; training
  batches are masked anew in every epoch (``on_after_batch_transfer``, seeded by the fit's counters,
  as RoBERTa's dynamic masking; the paper duplicated its data with ten static masks), the
  validation sequences once, at setup;
* the **labelled task** (``task``), fine-tuning's few labels, from the held-out documents (each
  split from documents of its own), every split balanced:

  - ``"coherence"``: a pair ``[CLS] A [SEP] B [SEP]`` where B is the sentence that follows A in its
    document (label 1) or a sentence of another document (label 0): whether two sentences belong
    together, the question of next-sentence prediction, asked of held-out text with few labels;
  - ``"acceptability"``, after GLUE's CoLA (Warstadt et al., 2018), which BERT was fine-tuned on: a
    real sentence (label 1) or one with a window of ``shuffle_window`` consecutive words shuffled
    (label 0), so that the words are those of English and only their order is wrong. The last word
    never moves, so that its full stop stays at the end and the order is the only clue;
  - ``"replaced"``, after ELECTRA's replaced-token detection (Clark et al., 2020) and CoLA: a real
    sentence (label 1) or one with ``replace_fraction`` of its words (never the last) replaced by
    words drawn from the unigram distribution of the pre-training documents' prose (label 0), each
    keeping the punctuation of the word it replaces: every word is English, only whether it fits
    its context tells the two apart, which is what a masked language model learns to judge.

  ``labels`` examples train (few, as the claim needs), ``val_size`` validate, ``test_size`` test.

Phases. A model that pre-trains within the fit has an integer attribute ``pretraining_epochs``
(:class:`ai_scratch.modern_paradigm.bert.Bert`): in its first ``pretraining_epochs`` epochs the
training loader serves the masked pre-training sequences, afterwards the labelled sentences (the
trainer must reload its loaders every epoch, ``reload_dataloaders_every_n_epochs: 1``). The
validation loaders are the labelled sentences, and for a model that pre-trains, the masked
validation sequences as the second loader. A model without the attribute gets the labelled task.

Batches: labelled ``(tokens (B, L), labels (B,))``, pre-training dicts ``{"tokens", "mlm_labels"}``
(``mlm_labels`` is the original piece at the chosen positions and ``-100`` elsewhere) plus
``"is_next"`` (1: B follows A) with ``next_sentence``. Segment ids need no field of their own: a
position belongs to sentence B when a ``[SEP]`` precedes it (:func:`segment_ids`).

Reproducibility. The ``tokenizers`` trainer of WordPiece is not deterministic from one process to
another (huggingface/tokenizers issue #1794: sub-word ids are assigned in hash-map order and break
ties between merges of equal counts), so the learnt vocabulary is saved in ``data_dir/wordpiece/``
under a fingerprint of its text and settings, and every later run there reads it back.

Example::

    >>> dm = TextDataModule(vocab_size=2000, labels=64)
    >>> dm.setup()
    >>> tokens, labels = dm.arrays("train")
    >>> dm.decode(tokens[0])                  # a sentence: real (label 1) or with words shuffled (0)
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.base import SplitDataModule
from datamodules.sampling import EpochSeededSampler, TensorPairs, derive_seed, training_counters
from datamodules.sequences import download_text, load_texts

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PAD_INDEX, UNK_INDEX, CLS_INDEX, SEP_INDEX, MASK_INDEX = range(len(SPECIAL_TOKENS))
IGNORE_INDEX = -100
"""``mlm_labels`` at the positions the model is not asked about (``cross_entropy``'s ``ignore_index``)."""

TextSource = Literal["pydoc", "wikitext2"]
LabelledTask = Literal["acceptability", "coherence", "replaced"]
SPLITS = ("train", "val", "test")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_PLAIN_WORD = re.compile(r"^[A-Za-z][A-Za-z'\-]*[,.;:]?$")
_WIKI_HEADING = re.compile(r"^ = [^=].* = $", re.MULTILINE)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# ----------------------------------------------------------------------------------------------
# The corpus
# ----------------------------------------------------------------------------------------------


def documents(source: str, data_dir: str = "data", download: bool = False) -> list[tuple[str, str]]:
    """``(name, text)`` of every document of a corpus, in a fixed order: pydoc's topics by key, or
    WikiText-2's articles (cut at their ``= Title =`` headings) in the order of its files."""
    if source == "pydoc":
        from pydoc_data.topics import topics

        return [(key, topics[key]) for key in sorted(topics)]
    found: list[tuple[str, str]] = []
    for text in load_texts(source, data_dir, download):
        starts = [m.start() for m in _WIKI_HEADING.finditer(text)] or [0]
        for begin, end in zip(starts, [*starts[1:], len(text)]):
            article = text[begin:end]
            found.append((article.splitlines()[0].strip(" =") if article.strip() else "", article))
    return [(name, text) for name, text in found if text.strip()]


def prose_sentences(text: str, min_words: int = 8, max_words: int = 40) -> list[str]:
    """The sentences of ``text`` that read as English prose: ``min_words`` to ``max_words`` words,
    ending in a full stop, at least 85% of them plain words (letters, with trailing punctuation),
    none from an indented block (code examples and grammar rules)."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        if paragraph.startswith("   ") or ">>>" in paragraph:
            continue
        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
            words = sentence.split()
            plain = sum(bool(_PLAIN_WORD.match(word)) for word in words)
            if min_words <= len(words) <= max_words and sentence.endswith(".") and plain >= 0.85 * len(words):
                found.append(sentence)
    return found


def shuffle_words(sentence: str, window: int, rng: np.random.Generator) -> str:
    """``sentence`` with ``window`` consecutive words (never the last; all the others for a window
    as long as the sentence) put in another order."""
    words = sentence.split()
    window = min(window, len(words) - 1)
    start = int(rng.integers(0, len(words) - window))  # the window ends before the last word
    part = words[start : start + window]
    shuffled = part
    for _ in range(100):  # a new order of the words (a window of one word repeated has none)
        shuffled = [part[i] for i in rng.permutation(window)]
        if shuffled != part:
            break
    words[start : start + window] = shuffled
    return " ".join(words)


def unigram_words(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The plain words (punctuation stripped) of the prose sentences of ``texts`` and their
    frequencies, in a fixed order: the distribution :func:`replace_words` draws from."""
    counts: dict[str, int] = {}
    for text in texts:
        for sentence in prose_sentences(text):
            for word in sentence.split():
                if _PLAIN_WORD.match(word):
                    bare = word.rstrip(",.;:")
                    counts[bare] = counts.get(bare, 0) + 1
    words = sorted(counts)
    frequencies = np.array([counts[w] for w in words], dtype=np.float64)
    return words, frequencies / frequencies.sum()


def replace_words(sentence: str, fraction: float, words: list[str], probabilities: np.ndarray, rng: np.random.Generator) -> str:
    """``sentence`` of ``n`` words with ``round(fraction * (n - 1))`` of the words before its last
    (at least one) replaced by other words drawn from ``words`` with ``probabilities``, each keeping
    the trailing punctuation of the word it replaces."""
    tokens = sentence.split()
    count = max(1, round(fraction * (len(tokens) - 1)))
    for position in rng.choice(len(tokens) - 1, size=count, replace=False).tolist():
        old = tokens[position]
        bare = old.rstrip(",.;:")
        new = bare
        for _ in range(100):  # a word other than the one it replaces
            new = words[int(rng.choice(len(words), p=probabilities))]
            if new.lower() != bare.lower():
                break
        tokens[position] = new + old[len(bare) :]
    return " ".join(tokens)


# ----------------------------------------------------------------------------------------------
# WordPiece
# ----------------------------------------------------------------------------------------------


def train_wordpiece(texts: list[str], vocab_size: int) -> Any:
    """A lower-casing WordPiece tokenizer (BERT-uncased's normaliser and pre-tokeniser) learnt on
    ``texts`` with ``tokenizers``' trainer; the special tokens take ids 0 to 4."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def cached_wordpiece(texts: list[str], vocab_size: int, data_dir: str) -> Any:
    """:func:`train_wordpiece`, saved under ``data_dir/wordpiece/`` by a fingerprint of the texts
    and the size, and read back from there by every later run (the trainer is not deterministic
    across processes)."""
    from tokenizers import Tokenizer

    fingerprint = hashlib.sha256(json.dumps([vocab_size, texts]).encode()).hexdigest()[:16]
    path = Path(data_dir) / "wordpiece" / f"wordpiece-{vocab_size}-{fingerprint}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tokenizer = train_wordpiece(texts, vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    tokenizer.save(str(partial))
    partial.replace(path)  # whole or absent, if another process writes it too
    return tokenizer


# ----------------------------------------------------------------------------------------------
# Masking
# ----------------------------------------------------------------------------------------------


def segment_ids(tokens: Tensor) -> Tensor:
    """BERT's segment (token type) ids from the tokens: 0 up to and including the first ``[SEP]``
    (sentence A), 1 after it (sentence B, and its padding)."""
    separators = (tokens == SEP_INDEX).long()
    return (separators.cumsum(dim=-1) - separators).clamp(max=1)


def mask_tokens(
    tokens: Tensor, vocab_size: int, generator: torch.Generator, probability: float = 0.15
) -> tuple[Tensor, Tensor]:
    """BERT's masking (Section 3.1; Appendix A.1) of a batch of sequences ``(B, L)``.

    In every sequence ``round(probability * n)`` of its ``n`` word pieces are chosen (at least
    one), never ``[CLS]``, ``[SEP]`` or ``[PAD]``; of the chosen, 80% become ``[MASK]``, 10% a
    random word piece (not a special token) and 10% stay as they are. All draws come from
    ``generator`` (a CPU generator; the results are moved to ``tokens``' device).

    Returns:
        The masked tokens and ``mlm_labels``: the original piece where chosen, ``-100`` elsewhere.
    """
    device = tokens.device
    cpu = tokens.cpu()
    eligible = cpu >= len(SPECIAL_TOKENS)  # word pieces; [UNK] excepted too, as nothing to learn
    eligible |= cpu == UNK_INDEX
    count = (probability * eligible.sum(dim=1).float()).round().long().clamp(min=1)
    scores = torch.rand(cpu.shape, generator=generator).masked_fill(~eligible, 2.0)  # ineligible rank last
    ranks = scores.argsort(dim=1).argsort(dim=1)
    chosen = (ranks < count[:, None]) & eligible
    kind = torch.rand(cpu.shape, generator=generator)
    random_pieces = torch.randint(len(SPECIAL_TOKENS), vocab_size, cpu.shape, generator=generator)
    masked = cpu.clone()
    masked[chosen & (kind < 0.8)] = MASK_INDEX  # 80%: [MASK]
    replace = chosen & (kind >= 0.8) & (kind < 0.9)  # 10%: a random piece; the last 10% unchanged
    masked[replace] = random_pieces[replace]
    labels = torch.where(chosen, cpu, torch.full_like(cpu, IGNORE_INDEX))
    return masked.to(device), labels.to(device)


class TensorDict(Dataset):
    """Named tensors of one length, fetched a whole batch at a time (as :class:`TensorPairs`)."""

    def __init__(self, **tensors: Tensor) -> None:
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"TensorDict: the tensors differ in length: {sorted(lengths)}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {name: t[index] for name, t in self.tensors.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {name: t[index] for name, t in self.tensors.items()}

    @staticmethod
    def collate(batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return batch


# ----------------------------------------------------------------------------------------------
# The datamodule
# ----------------------------------------------------------------------------------------------


class TextDataModule(SplitDataModule):
    """Pre-training sequences and a labelled task from one corpus (see the module docstring).

    Args:
        source: ``"pydoc"`` (CPython's help topics, no download) or ``"wikitext2"`` (WikiText-2
            raw, downloaded into ``data_dir`` with ``download``).
        vocab_size: WordPiece vocabulary, the five special tokens included (BERT: 30,522).
        max_length: word pieces per sequence, ``[CLS]`` and ``[SEP]`` included (BERT: 512, and 128
            for 90% of its pre-training steps).
        labels: labelled training examples (the few labels of fine-tuning), at least 2.
        val_size, test_size: labelled validation and test examples.
        task: ``"coherence"`` (sentence pairs), ``"acceptability"`` (shuffled words) or
            ``"replaced"`` (words replaced by unigram draws); see above.
        shuffle_window: consecutive words shuffled in a corrupted sentence (>= 2; acceptability).
        replace_fraction: the share of a corrupted sentence's words replaced (in (0, 1); replaced).
        next_sentence: pre-training pairs for next-sentence prediction (Section 3.1, "Task #2").
        mask_probability: the share of word pieces chosen for prediction (0.15).
        stride: word pieces between the starts of pre-training windows; ``None``: no overlap.
        val_fraction: the share of the pre-training documents' text kept for validation.
        data_dir: the tokenizer cache, and where WikiText-2 is (or is downloaded to).
        download: download WikiText-2 when missing.
        batch_size: sequences per batch, in both phases.
        seed: the seed of the cut, the task's draws, the masks and the shuffles.

    Attributes (after :meth:`setup`): ``tokenizer``, ``itos`` (the word piece of every id),
    ``vocab_size``, ``pad_index``; ``split_documents`` (the document names of ``"pretraining"``,
    ``"pretraining_val"`` and ``"task"``); ``unigram`` (the words and probabilities that the
    ``replaced`` task draws from); ``sentences`` (``{split: [((sentence,) or (A, B), label)]}``).

    Raises:
        ValueError: for an argument out of range, or (at setup) a corpus with too few sentences for
            the labelled task, in one line.
    """

    def __init__(
        self,
        source: TextSource = "pydoc",
        vocab_size: int = 3000,
        max_length: int = 64,
        labels: int = 128,
        val_size: int = 100,
        test_size: int = 200,
        task: LabelledTask = "acceptability",
        shuffle_window: int = 4,
        replace_fraction: float = 0.25,
        next_sentence: bool = False,
        mask_probability: float = 0.15,
        stride: int | None = None,
        val_fraction: float = 0.1,
        data_dir: str = "data",
        download: bool = False,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        _check(source in ("pydoc", "wikitext2"), f"source must be 'pydoc' or 'wikitext2', got {source!r}")
        _check(isinstance(vocab_size, int) and vocab_size >= 100, f"vocab_size must be an integer >= 100, got {vocab_size!r}")
        _check(isinstance(max_length, int) and max_length >= 8, f"max_length must be an integer >= 8, got {max_length!r}")
        _check(isinstance(labels, int) and labels >= 2, f"labels must be an integer >= 2 (one of each class), got {labels!r}")
        for name, size in (("val_size", val_size), ("test_size", test_size)):
            _check(isinstance(size, int) and size >= 2, f"{name} must be an integer >= 2, got {size!r}")
        _check(task in ("acceptability", "coherence", "replaced"), f"task must be 'acceptability', 'coherence' or 'replaced', got {task!r}")
        _check(0.0 < replace_fraction < 1.0, f"replace_fraction must lie in (0, 1), got {replace_fraction}")
        _check(isinstance(shuffle_window, int) and shuffle_window >= 2, f"shuffle_window must be an integer >= 2, got {shuffle_window!r}")
        _check(0.0 < mask_probability < 1.0, f"mask_probability must lie in (0, 1), got {mask_probability}")
        _check(stride is None or (isinstance(stride, int) and stride >= 1), f"stride must be a positive integer or None, got {stride!r}")
        _check(0.0 < val_fraction < 0.5, f"val_fraction must lie in (0, 0.5), got {val_fraction}")
        _check(source != "pydoc" or not download, "download=True needs source wikitext2 (pydoc ships with Python)")
        self.save_hyperparameters()
        self.source, self.vocab_size_asked, self.max_length = source, vocab_size, max_length
        self.sizes = {"train": labels, "val": val_size, "test": test_size}
        self.task = task
        self.replace_fraction = replace_fraction
        self.unigram: tuple[list[str], np.ndarray] = ([], np.zeros(0))
        self.shuffle_window, self.next_sentence, self.mask_probability = shuffle_window, next_sentence, mask_probability
        self.stride = stride or max_length - 2
        self.val_fraction, self.data_dir, self.download = val_fraction, data_dir, download
        self.pad_index = PAD_INDEX
        self.tokenizer: Any = None
        self.itos: list[str] = []
        self.split_documents: dict[str, list[str]] = {}
        self.sentences: dict[str, list[tuple[str, int]]] = {}
        self.pretraining: dict[str, TensorDict] = {}

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """The WordPiece vocabulary's size (sets the data up first: the corpus decides it)."""
        self.setup()
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """The word-piece ids of ``text``, without special tokens."""
        if self.tokenizer is None:
            self.setup()
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, tokens: Any) -> str:
        """The text of a row of ids, special tokens left out, word pieces joined."""
        self.setup()
        ids = [int(t) for t in np.asarray(tokens).reshape(-1) if int(t) >= len(SPECIAL_TOKENS) or int(t) == UNK_INDEX]
        return self.tokenizer.decode(ids)

    def pieces(self, tokens: Any) -> list[str]:
        """The word piece of every id of a row, ``[PAD]`` at the end cut off."""
        ids = [int(t) for t in np.asarray(tokens).reshape(-1)]
        while ids and ids[-1] == PAD_INDEX:
            ids.pop()
        return [self.itos[i] for i in ids]

    def sequence(self, pieces_a: list[int], pieces_b: list[int] | None = None) -> list[int]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, cut to ``max_length`` (the longer part shortened)."""
        a, b = list(pieces_a), list(pieces_b or [])
        room = self.max_length - (3 if pieces_b is not None else 2)
        while len(a) + len(b) > room:
            (a if len(a) >= len(b) else b).pop()
        return [CLS_INDEX, *a, SEP_INDEX] + ([*b, SEP_INDEX] if pieces_b is not None else [])

    def padded(self, rows: list[list[int]]) -> Tensor:
        out = torch.full((len(rows), self.max_length), PAD_INDEX, dtype=torch.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.as_tensor(row, dtype=torch.int64)
        return out

    # ------------------------------------------------------------------ setup
    def prepare_data(self) -> None:
        if self.download:
            download_text(self.source, self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        """Cut the corpus, learn the vocabulary, draw the labelled task and the pre-training sequences (once)."""
        if self.train_dataset is not None:
            return
        docs = documents(self.source, self.data_dir, self.download)
        rng = np.random.default_rng(derive_seed(self.seed, 0))
        # the labelled task's documents, held out whole: the test split's first, then val's, then train's
        units = {split: [] for split in SPLITS}  # examples to draw from: sentences, or (sentence, next sentence)
        task, rest = [], []
        for i in rng.permutation(len(docs)).tolist():
            split = next((name for name in ("test", "val", "train") if len(units[name]) < self.sizes[name]), None)
            found = prose_sentences(docs[i][1]) if split is not None else []
            if self.task == "coherence":
                found = [(a, b, i) for a, b in zip(found, found[1:])]
            if not found:
                rest.append(i)
                continue
            task.append(i)
            units[split].extend(found)
        for split in SPLITS:
            _check(
                len(units[split]) >= self.sizes[split],
                f"the {self.source} corpus has too few prose sentences for the {self.task} task with labels={self.sizes['train']}, "
                f"val_size={self.sizes['val']} and test_size={self.sizes['test']}",
            )
        total = sum(len(docs[i][1]) for i in rest)
        val_docs, train_docs, kept = [], [], 0
        for i in rest:  # the first documents, up to val_fraction of the text, validate
            if kept < self.val_fraction * total:
                val_docs.append(i)
                kept += len(docs[i][1])
            else:
                train_docs.append(i)
        _check(bool(train_docs) and bool(val_docs), f"the {self.source} corpus is too small to hold pre-training documents out")
        self.split_documents = {
            "pretraining": [docs[i][0] for i in train_docs],
            "pretraining_val": [docs[i][0] for i in val_docs],
            "task": [docs[i][0] for i in task],
        }
        self.tokenizer = cached_wordpiece([docs[i][1] for i in train_docs], self.vocab_size_asked, self.data_dir)
        vocabulary = self.tokenizer.get_vocab()
        self.itos = [""] * len(vocabulary)
        for piece, index in vocabulary.items():
            self.itos[index] = piece
        if self.task == "replaced":
            self.unigram = unigram_words([docs[i][1] for i in train_docs])
        for split in SPLITS:
            self._labelled_split(split, units[split], rng)
        self.pretraining = {
            "train": self._pretraining_sequences([docs[i][1] for i in train_docs], rng, masked=False),
            "val": self._pretraining_sequences([docs[i][1] for i in val_docs], rng, masked=True),
        }

    def _labelled_split(self, split: str, units: list, rng: np.random.Generator) -> None:
        """``size`` examples drawn from ``units``, half of them real (label 1), half corrupted (label 0)."""
        size = self.sizes[split]
        chosen = [units[i] for i in rng.choice(len(units), size=size, replace=False)]
        real = np.zeros(size, dtype=bool)
        real[rng.permutation(size)[: size - size // 2]] = True
        examples: list[tuple[tuple[str, ...], int]] = []
        for unit, is_real in zip(chosen, real.tolist()):
            if self.task == "acceptability":
                examples.append(((unit,) if is_real else (shuffle_words(unit, self.shuffle_window, rng),), int(is_real)))
                continue
            if self.task == "replaced":
                corrupted = unit if is_real else replace_words(unit, self.replace_fraction, *self.unigram, rng)
                examples.append(((corrupted,), int(is_real)))
                continue
            a, b, document = unit
            if not is_real:  # B from another document of the same split
                others = [u[1] for u in units if u[2] != document]
                b = others[int(rng.integers(len(others)))]
            examples.append(((a, b), int(is_real)))
        self.sentences[split] = examples
        rows = [self.sequence(*(self.encode(part) for part in parts)) for parts, _ in examples]
        labels = torch.as_tensor([label for _, label in examples], dtype=torch.int64)
        setattr(self, f"{split}_dataset", TensorPairs(self.padded(rows), labels))
        self.split_indices[split] = np.arange(size)

    def _pretraining_sequences(self, texts: list[str], rng: np.random.Generator, masked: bool) -> TensorDict:
        """Windows of the documents' word pieces, as ``[CLS] window [SEP]`` or NSP pairs; masked once
        for validation, left for :meth:`on_after_batch_transfer` to mask anew for training."""
        streams = [self.encode(text) for text in texts]
        width = self.max_length - (3 if self.next_sentence else 2)
        rows, is_next = [], []
        for d, stream in enumerate(streams):
            for start in range(0, max(1, len(stream) - width // 2), self.stride):
                window = stream[start : start + width]
                if len(window) < 2:
                    continue
                if not self.next_sentence:
                    rows.append(self.sequence(window))
                    continue
                cut = int(rng.integers(1, len(window)))
                a, b = window[:cut], window[cut:]
                follows = bool(rng.random() < 0.5) or len(streams) == 1
                if not follows:  # a span of the same length from another document
                    other = streams[int(rng.choice([j for j in range(len(streams)) if j != d]))]
                    begin = int(rng.integers(0, max(1, len(other) - len(b))))
                    b = other[begin : begin + len(b)] or b
                rows.append(self.sequence(a, b))
                is_next.append(int(follows))
        tokens = self.padded(rows)
        fields: dict[str, Tensor] = {"tokens": tokens}
        if self.next_sentence:
            fields["is_next"] = torch.as_tensor(is_next, dtype=torch.int64)
        if masked:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, 1))
            fields["tokens"], fields["mlm_labels"] = mask_tokens(tokens, len(self.itos), generator, self.mask_probability)
        return TensorDict(**fields)

    # ------------------------------------------------------------------ phases and loaders
    def _model_pretraining_epochs(self) -> int:
        trainer = self.trainer
        model = trainer.lightning_module if trainer is not None else None
        return int(getattr(model, "pretraining_epochs", 0) or 0)

    def pretraining_now(self) -> bool:
        """Whether the current epoch of the attached fit is one of the model's pre-training epochs."""
        trainer = self.trainer
        return trainer is not None and trainer.current_epoch < self._model_pretraining_epochs()

    def _dict_loader(self, data: TensorDict, shuffle: bool) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=EpochSeededSampler(len(data), seed=self.seed, shuffle=shuffle),
            collate_fn=TensorDict.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def pretraining_dataloader(self, split: str = "train") -> DataLoader:
        """The pre-training sequences of ``split`` (``train``: unmasked, masked per batch; ``val``: masked)."""
        self.setup()
        return self._dict_loader(self.pretraining[split], shuffle=split == "train")

    def train_dataloader(self) -> DataLoader:
        """The pre-training sequences during the model's pre-training epochs, the labelled sentences after."""
        if self.pretraining_now():
            return self.pretraining_dataloader("train")
        return super().train_dataloader()

    def val_dataloader(self) -> Any:
        """The labelled sentences, and the masked validation sequences for a model that pre-trains."""
        labelled = super().val_dataloader()
        if self._model_pretraining_epochs() > 0:
            return [labelled, self.pretraining_dataloader("val")]
        return labelled

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Mask a training batch of pre-training sequences (already on the device), drawn from
        ``(seed, epoch, step, rank, batch)``: a new mask every epoch, the same on a rerun."""
        if not isinstance(batch, dict) or "mlm_labels" in batch:
            return batch
        trainer = self.trainer
        counters = training_counters(trainer) if trainer is not None else (0, 0, 0, 0)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, 2, *counters))
        tokens, mlm_labels = mask_tokens(batch["tokens"], len(self.itos), generator, self.mask_probability)
        return {**batch, "tokens": tokens, "mlm_labels": mlm_labels}
