"""The sequence figures and samples (callbacks/attention_maps.py, callbacks/sequence_figures.py) in
real Lightning fits of tiny models on the datamodules of datamodules/sequences.py.

Each test checks that the figure is written and drawn from the right numbers (recomputed here by
hand from the trained model), and that whatever the callback switched on in the model for its pass
is switched off again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from PIL import Image
from torch import Tensor, nn

from ai_scratch.sequence_models.gru import GRU
from ai_scratch.sequence_models.lstm import LSTM
from ai_scratch.sequence_models.rnn import ElmanRNN
from ai_scratch.sequence_models.tasks import RecurrentNetwork, Seq2SeqModel
from callbacks import AttentionMaps, GateActivations, TextSamples, TimeStepGradients, wandb_helpers
from conftest import quiet_trainer
from datamodules.sequences import AddingProblemDataModule, CharLMDataModule, CopyReverseDataModule
from wandb_log import find_runs, read_run

# nn.TransformerEncoder's own inference fast path (the test model's, outside the batch the callback listens to)
pytestmark = pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")


@pytest.fixture(autouse=True)
def fresh_notices() -> None:
    wandb_helpers._said.clear()


# ---------------------------------------------------------------------- tiny models
class TinyElman(RecurrentNetwork):
    layer_class = ElmanRNN


class TinyLSTM(RecurrentNetwork):
    layer_class = LSTM

    def layer_options(self) -> dict[str, Any]:
        return {"forget_bias": 1.0}


class TinyGRU(RecurrentNetwork):
    layer_class = GRU

    def layer_options(self) -> dict[str, Any]:
        return {"reset_after": True}  # the variant with a fused path


class TinyTransformer(Seq2SeqModel):
    """``nn.Transformer`` (two layers each side, two heads) on copy / reversal: its attention is
    torch's ``nn.MultiheadAttention``, called with ``need_weights=False`` by the layers."""

    def __init__(self, vocab_size: int, target_length: int, width: int = 32) -> None:
        super().__init__(vocab_size, vocab_size, target_length)
        self.embedding = nn.Embedding(vocab_size, width)
        self.positions = nn.Parameter(0.1 * torch.randn(32, width))
        self.transformer = nn.Transformer(width, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64,
                                          dropout=0.0, batch_first=True)  # fmt: skip
        self.head = nn.Linear(width, vocab_size)

    def forward(self, source: Tensor, decoder_input: Tensor) -> Tensor:
        def embed(tokens: Tensor) -> Tensor:
            return self.embedding(tokens) + self.positions[: tokens.shape[1]]

        causal = nn.Transformer.generate_square_subsequent_mask(decoder_input.shape[1], device=source.device)
        padding = source == 0
        hidden = self.transformer(embed(source), embed(decoder_input), tgt_mask=causal, src_key_padding_mask=padding,
                                  memory_key_padding_mask=padding)  # fmt: skip
        return self.head(hidden)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


class SelfAttentionTagger(L.LightningModule):
    """One ``nn.MultiheadAttention`` over a token sequence, tagging each position; knows nothing of
    ai_scratch. It calls the attention with ``need_weights=False``, as fast code does."""

    def __init__(self, vocab_size: int, width: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width)
        self.attention = nn.MultiheadAttention(width, num_heads=2, batch_first=True)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens)
        return self.head(self.attention(x, x, x, need_weights=False)[0])

    def _loss(self, batch: Any) -> Tensor:
        source, target = batch
        return nn.functional.cross_entropy(self(source).flatten(0, 1), target[:, 1:].flatten())

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._loss(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class AdditiveAttention(nn.Module):
    """Bahdanau-style attention that keeps its weights in ``attention_weights`` (batch, queries, keys)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.query, self.key, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, 1)
        self.attention_weights: Tensor | None = None

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        energies = self.v(torch.tanh(self.query(queries)[:, :, None] + self.key(keys)[:, None])).squeeze(-1)
        self.attention_weights = energies.softmax(dim=-1)  # alpha_ij
        return self.attention_weights @ keys


class AdditiveTagger(SelfAttentionTagger):
    def __init__(self, vocab_size: int, width: int = 16) -> None:
        super().__init__(vocab_size, width)
        self.attention = AdditiveAttention(width)  # type: ignore[assignment]

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens)
        return self.head(self.attention(x, x))


def reversal(batch_size: int = 32) -> CopyReverseDataModule:
    return CopyReverseDataModule(task="reverse", num_symbols=6, min_length=3, max_length=7, train_size=256, val_size=32,
                                 test_size=8, batch_size=batch_size)  # fmt: skip


def adding(seq_len: int = 20) -> AddingProblemDataModule:
    return AddingProblemDataModule(seq_len=seq_len, train_size=128, val_size=32, test_size=8, batch_size=32)


def fit(
    root: Path, model: L.LightningModule, datamodule: L.LightningDataModule, callbacks: list[Callback], **settings: Any
) -> L.Trainer:
    torch.manual_seed(0)
    trainer = quiet_trainer(default_root_dir=root, callbacks=callbacks, **{"max_epochs": 2, **settings})
    trainer.fit(model, datamodule)
    return trainer


def assert_picture(path: Path) -> None:
    """A complete PNG of a real figure: large, and not one flat colour."""
    assert path.is_file()
    with Image.open(path) as image:
        image.load()
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert min(pixels.shape) > 300 and pixels.std() > 10


def first_validation_batch(datamodule: L.LightningDataModule) -> tuple[Tensor, Tensor]:
    return next(iter(datamodule.val_dataloader()))


# ---------------------------------------------------------------------- attention maps
def test_attention_of_nn_multihead_attention_is_read_even_when_the_caller_does_not_ask(tmp_path: Path) -> None:
    datamodule = reversal()
    model = SelfAttentionTagger(datamodule.vocab_size)
    maps = AttentionMaps(num_examples=3)
    fit(tmp_path, model, datamodule, [maps])
    assert [p.name for p in maps.saved] == ["attention_maps.png", "attention_heads.png"]
    for path in maps.saved:
        assert_picture(path)
    assert list(maps.maps) == ["attention"]
    source, _ = first_validation_batch(datamodule)
    x = model.embedding(source[:3])
    with torch.no_grad():
        _, expected = model.attention(x, x, x, need_weights=True, average_attn_weights=False)
    np.testing.assert_allclose(maps.maps["attention"], expected.numpy(), atol=1e-6)  # (examples, heads, queries, keys)
    np.testing.assert_allclose(maps.maps["attention"].sum(axis=-1), 1.0, atol=1e-5)
    # the listening is over: the fast path is back, and the module answers as its caller asked
    assert torch.backends.mha.get_fastpath_enabled()
    assert model.attention(x, x, x, need_weights=False)[1] is None


def test_attention_maps_of_an_encoder_decoder_are_labelled_with_its_tokens(tmp_path: Path) -> None:
    datamodule = reversal()
    model = TinyTransformer(datamodule.vocab_size, datamodule.target_length)
    maps = AttentionMaps(num_examples=2)
    trainer = fit(tmp_path, model, datamodule, [maps])
    # the last layer of each kind: encoder self-attention, decoder self-attention, cross-attention
    assert list(maps.maps) == ["transformer.encoder.layers.1.self_attn", "transformer.decoder.layers.1.self_attn",
                               "transformer.decoder.layers.1.multihead_attn"]  # fmt: skip
    for weights in maps.maps.values():
        assert weights.shape[:2] == (2, 2)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    # greedy decoding ran last in validation: the decoder's rows are the steps it decoded
    decoder_self = maps.maps["transformer.decoder.layers.1.self_attn"][0].mean(axis=0)
    assert np.allclose(np.triu(decoder_self, k=1), 0.0, atol=1e-6)  # the causal mask: no query reads a later key
    figure = maps.draw(None, trainer, model)["attention_maps"]
    source, _ = first_validation_batch(datamodule)
    words = [datamodule.itos[int(t)] for t in source[0] if int(t) != datamodule.pad_index]
    encoder_panel, _, cross_panel = figure.axes[:3]
    assert [t.get_text() for t in encoder_panel.get_xticklabels()] == words  # keys: the source, padding cut
    assert [t.get_text() for t in cross_panel.get_xticklabels()] == words
    assert encoder_panel.get_xlabel() == "key: source" and cross_panel.get_ylabel().endswith("query: target (expected token)")


def test_attention_weights_attribute_of_any_submodule_is_drawn(tmp_path: Path) -> None:
    datamodule = reversal()
    model = AdditiveTagger(datamodule.vocab_size)
    maps = AttentionMaps(num_examples=4)
    fit(tmp_path, model, datamodule, [maps])
    assert [p.name for p in maps.saved] == ["attention_maps.png"]  # one head: no per-head figure
    assert_picture(maps.saved[0])
    source, _ = first_validation_batch(datamodule)
    with torch.no_grad():
        x = model.embedding(source[:4])
        model.attention(x, x)
    np.testing.assert_allclose(maps.maps["attention"][:, 0], model.attention.attention_weights.numpy(), atol=1e-6)


def test_a_model_without_attention_is_told_once_and_drawn_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    maps = AttentionMaps(every_n_epochs=1)
    with caplog.at_level(logging.INFO):
        fit(tmp_path, TinyLSTM(hidden_size=8), adding(), [maps])
    notices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("AttentionMaps: no figure")]
    assert len(notices) == 1 and "exposes no attention weights" in notices[0]
    assert maps.saved == []


def test_attention_maps_refuses_a_module_name_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no submodule named"):
        fit(tmp_path, SelfAttentionTagger(9), reversal(), [AttentionMaps(modules=["decoder.attention"])])
    with pytest.raises(ValueError, match="num_examples must be an integer of at least 1"):
        AttentionMaps(num_examples=0)


# ---------------------------------------------------------------------- gradient per time step
class GradientSnapshot(Callback):
    """Keeps the parameters' gradients at the end of training (put before and after the callback under test)."""

    def __init__(self) -> None:
        self.grads: dict[str, Tensor | None] = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.grads = {n: None if p.grad is None else p.grad.clone() for n, p in pl_module.named_parameters()}


def manual_state_gradient_norms(model: RecurrentNetwork, batch: tuple[Tensor, Tensor], state_index: int) -> np.ndarray:
    """||d loss / d state_t|| by hand, on a copy of the model run on its hand path."""
    import copy

    twin = copy.deepcopy(model).eval()
    twin.recurrent.fused, twin.recurrent.retain_hidden_grads = False, True
    inputs, targets = batch
    twin.criterion(twin(inputs), targets).backward()
    return twin.recurrent.state_gradient_norms(state_index)[0].numpy()


@pytest.mark.parametrize("network", [TinyElman, TinyLSTM])
def test_time_step_gradients_are_the_norms_a_manual_backward_gives(tmp_path: Path, network: type) -> None:
    model = network(hidden_size=16, fused=True)
    datamodule = adding(seq_len=20)
    before, after = GradientSnapshot(), GradientSnapshot()
    gradients = TimeStepGradients(max_examples=16)
    fit(tmp_path, model, datamodule, [before, gradients, after])
    assert_picture(gradients.saved[0])
    inputs, targets = first_validation_batch(datamodule)
    batch = (inputs[:16], targets[:16])
    hidden = gradients.norms["recurrent: hidden state h_t"]
    assert hidden.shape == (20,)
    np.testing.assert_allclose(hidden, manual_state_gradient_norms(model, batch, 0), rtol=1e-5)
    if network is TinyLSTM:
        cell = manual_state_gradient_norms(model, batch, 1)
        np.testing.assert_allclose(gradients.norms["recurrent: memory cell c_t"], cell, rtol=1e-5)
    else:
        assert list(gradients.norms) == ["recurrent: hidden state h_t"]
    # the flags are back, no state is kept, and the parameters' gradients were not touched
    assert model.recurrent.fused and not model.recurrent.retain_hidden_grads and model.recurrent.step_states == []
    assert before.grads.keys() == after.grads.keys()
    for name, grad in before.grads.items():
        assert (grad is None and after.grads[name] is None) or torch.equal(grad, after.grads[name]), name


def test_time_step_gradients_of_a_stacked_layer_and_of_a_model_without_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gradients = TimeStepGradients()
    fit(tmp_path / "gru", TinyGRU(hidden_size=8, num_layers=2), adding(seq_len=12), [gradients], max_epochs=1)
    assert list(gradients.norms) == ["recurrent, layer 1: hidden state h_t", "recurrent, layer 2: hidden state h_t"]
    assert all(line.shape == (12,) and (line > 0).all() for line in gradients.norms.values())
    none = TimeStepGradients()
    with caplog.at_level(logging.INFO):
        fit(tmp_path / "tagger", SelfAttentionTagger(9), reversal(), [none], max_epochs=1)
    assert none.saved == [] and any("TimeStepGradients: no figure" in r.getMessage() for r in caplog.records)


def test_time_step_gradients_of_a_language_model_follow_the_last_steps_loss(tmp_path: Path) -> None:
    datamodule = CharLMDataModule(block_size=12, batch_size=16)
    datamodule.setup()
    model = TinyLSTM(task="language_model", input_size=datamodule.vocab_size, output_size=datamodule.vocab_size,
                     hidden_size=16, context_size=12)  # fmt: skip
    gradients = TimeStepGradients(max_examples=8)
    fit(tmp_path, model, datamodule, [gradients], max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    tokens, following = first_validation_batch(datamodule)
    model.recurrent.retain_hidden_grads = True
    scores = model.eval()(tokens[:8])
    model.criterion(scores[:, -1:], following[:8, -1:]).backward()  # the loss at t = T alone
    manual = model.recurrent.state_gradient_norms(0)[0].numpy()
    np.testing.assert_allclose(gradients.norms["recurrent: hidden state h_t"], manual, rtol=1e-5)
    assert gradients.norms["recurrent: hidden state h_t"][0] < gradients.norms["recurrent: hidden state h_t"][-1]


# ---------------------------------------------------------------------- gates
@pytest.mark.parametrize(("network", "gates"), [
    (TinyLSTM, ["input", "forget", "cell_candidate", "output", "hidden", "cell"]),
    (TinyGRU, ["reset", "update", "candidate", "hidden"]),
])  # fmt: skip
def test_gate_activations_are_the_gates_of_one_validation_sequence(tmp_path: Path, network: type, gates: list[str]) -> None:
    model = network(hidden_size=24, fused=True)
    datamodule = adding(seq_len=15)
    figure = GateActivations(max_units=6, example=1)
    fit(tmp_path, model, datamodule, [figure])
    assert [p.name for p in figure.saved] == ["gate_activations.png"]
    assert_picture(figure.saved[0])
    drawn = figure.activations["recurrent"]
    assert list(drawn) == gates
    units = figure.units["recurrent"]
    assert len(units) == 6 and (np.diff(units) > 0).all()
    inputs, _ = first_validation_batch(datamodule)
    model.recurrent.fused, model.recurrent.record_gates = False, True
    with torch.no_grad():
        model.eval()(inputs[1:2])
    for gate in gates:
        np.testing.assert_allclose(drawn[gate], model.recurrent.recorded[0][gate][0][:, units].numpy(), atol=1e-6)
    assert drawn["forget" if network is TinyLSTM else "update"].min() >= 0.0


def test_gate_activations_restore_the_fused_path_and_skip_an_elman_rnn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = TinyLSTM(hidden_size=8, fused=True)
    fit(tmp_path / "lstm", model, adding(seq_len=10), [GateActivations()], max_epochs=1)
    assert model.recurrent.fused and not model.recurrent.record_gates and model.recurrent.recorded == []
    elman = GateActivations()
    with caplog.at_level(logging.INFO):
        fit(tmp_path / "elman", TinyElman(hidden_size=8), adding(seq_len=10), [elman], max_epochs=1)
    assert elman.saved == []
    assert any("have no gates" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------- samples
def table_file(wandb_dir: Path, key: str) -> dict[str, Any]:
    """The newest table logged under ``key`` in the offline run: its JSON as wandb wrote it."""
    log = read_run(find_runs(wandb_dir)[0])
    rows = [row for row in log.history if f"{key}/_type" in row]
    assert rows and rows[-1][f"{key}/_type"] == "table-file"
    run_dir = find_runs(wandb_dir)[0].parent
    return json.loads((run_dir / "files" / rows[-1][f"{key}/path"]).read_text())


def test_text_samples_of_a_language_model_are_written_and_logged_as_a_table(wandb_offline: Path) -> None:
    datamodule = CharLMDataModule(block_size=16, batch_size=32)
    datamodule.setup()
    model = TinyLSTM(task="language_model", input_size=datamodule.vocab_size, output_size=datamodule.vocab_size,
                     hidden_size=16, context_size=16, fused=True)  # fmt: skip
    samples = TextSamples(num_samples=3, length=40, prompt_length=8, temperature=0.8, seed=5)
    logger = WandbLogger(project="text-samples", save_dir=str(wandb_offline))
    trainer = quiet_trainer(default_root_dir=wandb_offline.parent, logger=logger, callbacks=[samples], max_epochs=1,
                            limit_train_batches=3, limit_val_batches=1)  # fmt: skip
    trainer.fit(model, datamodule)
    logger.experiment.finish()
    assert [p.name for p in samples.saved] == ["text_samples.md"]
    rows = samples.rows["text_samples"]
    assert len(rows) == 3 and all(len(sample) == 40 for _, _, sample, _ in rows)
    # the prompts are validation windows, and the samples are what the seeded generator draws
    prompts, _ = first_validation_batch(datamodule)
    generator = torch.Generator().manual_seed(5)
    for k, (epoch, prompt, sample, temperature) in enumerate(rows):
        assert (epoch, temperature, prompt) == (0, 0.8, datamodule.decode(prompts[k, :8]))
        assert sample == datamodule.decode(model.generate(prompts[k, :8], 40, temperature=0.8, generator=generator)[8:])
    text = samples.saved[0].read_text()
    assert rows[0][2] in text and rows[2][1] in text
    table = table_file(wandb_offline, "text_samples")
    assert table["columns"] == ["epoch", "prompt", "sample", "temperature"]
    assert table["data"] == rows


def test_translations_of_a_seq2seq_model_are_a_table_of_source_expected_decoded(wandb_offline: Path) -> None:
    datamodule = reversal()
    model = TinyTransformer(datamodule.vocab_size, datamodule.target_length)
    samples = TextSamples(num_translations=4, every_n_epochs=1)
    logger = WandbLogger(project="translations", save_dir=str(wandb_offline))
    trainer = quiet_trainer(default_root_dir=wandb_offline.parent, logger=logger, callbacks=[samples], max_epochs=2)
    torch.manual_seed(0)
    trainer.fit(model, datamodule)
    logger.experiment.finish()
    assert [p.name for p in samples.saved] == ["translations_epoch000.md", "translations_epoch001.md", "translations.md"]
    rows = samples.rows["translations"]
    assert [row[0] for row in rows] == [0] * 4 + [1] * 4  # the final rows are epoch 1's, not repeated
    source, target = first_validation_batch(datamodule)
    decoded = model.greedy_decode(source[:4])
    for k, (_, text, expected, output, correct) in enumerate(rows[-4:]):
        assert (text, expected) == (datamodule.decode(source[k]), datamodule.decode(target[k]))
        assert text.split()[::-1] == expected.split()  # reversal
        assert output == datamodule.decode(decoded[k]) and correct == (output == expected)
    table = table_file(wandb_offline, "translations")
    assert table["columns"] == ["epoch", "source", "expected", "decoded", "correct"] and table["data"] == rows


def test_text_samples_say_once_when_a_model_writes_no_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    samples = TextSamples(every_n_epochs=1)
    with caplog.at_level(logging.INFO):
        fit(tmp_path, TinyLSTM(hidden_size=8), adding(seq_len=10), [samples])
    assert samples.saved == []
    assert len([r for r in caplog.records if r.getMessage().startswith("TextSamples: no samples")]) == 1
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        TextSamples(temperature=-1.0)
