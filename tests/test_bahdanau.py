"""Bahdanau, Cho and Bengio's encoder-decoder with additive attention: the equations, the decoder's
state, the paper-sized count, the CLI, and (slow) the claims of its experiments."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from ai_scratch.base import BaseModel
from ai_scratch.cli import main
from ai_scratch.sequence_models.bahdanau import (
    PAPER_CONFIGS,
    AdditiveAttention,
    BahdanauSeq2Seq,
    parameter_count,
    reverse_padded,
)
from ai_scratch.sequence_models.bahdanau_figures import accuracy_by_length, length_report
from ai_scratch.sequence_models.gru import GRUCell
from ai_scratch.sequence_models.tasks import BOS_INDEX, EOS_INDEX, PAD_INDEX, Seq2SeqModel
from conftest import config

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
VOCAB, TARGET_LENGTH = 9, 8
COUNT_KEYS = ("source_vocab_size", "target_vocab_size", "embedding_size", "hidden_size", "attention_size", "maxout_size", "cell", "attention")


def small_model(**options) -> BahdanauSeq2Seq:
    torch.manual_seed(0)
    settings = dict(source_vocab_size=VOCAB, target_vocab_size=VOCAB, target_length=TARGET_LENGTH,
                    embedding_size=6, hidden_size=5, attention_size=7, maxout_size=3)  # fmt: skip
    return BahdanauSeq2Seq(**{**settings, **options})


def padded_sources() -> torch.Tensor:
    """Three sources of different lengths: symbols, <eos>, then <pad>."""
    rows = [[3, 4, 5, 6, 7, EOS_INDEX], [8, 3, EOS_INDEX, 0, 0, 0], [5, 5, 6, EOS_INDEX, 0, 0]]
    return torch.tensor(rows)


def teacher_input(batch: int = 3, steps: int = TARGET_LENGTH - 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(3, VOCAB, (batch, steps), generator=generator)
    tokens[:, 0] = BOS_INDEX
    return tokens


# ------------------------------------------------------------------ the alignment model

def test_additive_attention_matches_the_equations_by_hand() -> None:
    torch.manual_seed(0)
    attention = AdditiveAttention(query_size=4, key_size=6, attention_size=5)
    s, h = torch.randn(2, 4), torch.randn(2, 3, 6)
    context, weights = attention(s, h)
    W, U, b, v = attention.query_projection.weight, attention.key_projection.weight, attention.key_projection.bias, attention.score.weight[0]
    for batch in range(2):
        e = torch.stack([v @ torch.tanh(W @ s[batch] + U @ h[batch, j] + b) for j in range(3)])  # e_ij
        alpha = torch.exp(e) / torch.exp(e).sum()  # a_ij
        assert_close(weights[batch], alpha)
        assert_close(context[batch], (alpha[:, None] * h[batch]).sum(0))  # c_i = sum_j a_ij h_j
    assert attention.attention_weights.shape == (2, 1, 3) and not attention.attention_weights.requires_grad


def test_attention_weights_sum_to_one_and_are_zero_on_padding() -> None:
    torch.manual_seed(0)
    attention = AdditiveAttention(4, 6, 5)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    _, weights = attention(torch.randn(2, 3, 4), torch.randn(2, 4, 6), mask)  # three queries at once
    assert weights.shape == (2, 3, 4)
    assert_close(weights.sum(-1), torch.ones(2, 3))
    assert torch.all(weights[0, :, 2:] == 0) and torch.all(weights[0, :, :2] > 0)


def test_model_leaves_the_whole_targets_weights_on_its_attention_module() -> None:
    model = small_model()
    source = padded_sources()
    scores = model(source, teacher_input())
    assert scores.shape == (3, TARGET_LENGTH - 1, VOCAB)
    weights = model.attention.attention_weights
    assert weights.shape == (3, TARGET_LENGTH - 1, source.shape[1]) and not weights.requires_grad
    assert_close(weights.sum(-1), torch.ones(3, TARGET_LENGTH - 1))
    padded = (source == PAD_INDEX)[:, None].expand_as(weights)
    assert torch.all(weights[padded] == 0) and torch.all(weights[~padded] > 0)
    decoded = model.greedy_decode(source)
    assert decoded.shape == (3, TARGET_LENGTH - 1)
    # greedy decoding leaves the weights of the steps it ran (it stops once every row has ended)
    steps = model.attention.attention_weights.shape[1]
    assert model.attention.attention_weights.shape == (3, steps, source.shape[1]) and 1 <= steps <= TARGET_LENGTH - 1


# ------------------------------------------------------------------ encoder, initial state, decoding

def test_reverse_padded_reverses_each_row_within_its_length() -> None:
    rows = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    flipped = reverse_padded(rows, torch.tensor([3, 2]))
    assert flipped.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_padded(flipped, torch.tensor([3, 2])), rows)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_initial_state_is_tanh_of_W_s_times_the_first_backward_annotation(cell: str) -> None:
    model = small_model(cell=cell)
    source = padded_sources()
    encoded = model.encode(source)
    for row, length in enumerate((6, 3, 4)):
        # h<-_1: the backward cell run by hand from the last real token to the first, from zeros
        state = model.encoder_backward.cells[0].initial_state(1, encoded.annotations)
        for j in reversed(range(length)):
            state, _ = model.encoder_backward.cells[0].step(model.source_embedding(source[row, j])[None], state)
        assert_close(encoded.annotations[row, 0, 5:], state[0][0])
        # the padding after the sentence changes nothing: the same sentence alone gives the same annotations
        alone = model.encode(source[row : row + 1, :length]).annotations[0]
        assert_close(encoded.annotations[row, :length], alone)
    s_0 = model.start_state(encoded)
    expected = torch.tanh(encoded.annotations[:, 0, 5:] @ model.initial_state.weight.T + model.initial_state.bias)
    assert_close(s_0[0], expected)
    assert len(s_0) == (2 if cell == "lstm" else 1)


@pytest.mark.parametrize("options", [{}, {"attention": False}, {"cell": "gru"}, {"cell": "gru", "reset_after": True, "fused": True}])
def test_greedy_decode_equals_the_base_classes_generic_decode(options: dict) -> None:
    model = small_model(**options)
    source = padded_sources()
    fast = model.greedy_decode(source)
    generic = Seq2SeqModel.greedy_decode(model, source)
    assert torch.equal(fast, generic)
    # an untrained model's greedy decode still obeys the conventions: after <eos>, <pad> only
    for row in fast.tolist():
        if EOS_INDEX in row:
            assert all(t == PAD_INDEX for t in row[row.index(EOS_INDEX) + 1 :])


def test_fused_encoder_gives_the_same_scores_as_the_hand_cells() -> None:
    hand = small_model()
    fused = small_model(fused=True)
    fused.load_state_dict(hand.state_dict())
    assert_close(fused(padded_sources(), teacher_input()), hand(padded_sources(), teacher_input()))


def test_without_attention_every_step_reads_the_same_fixed_summary() -> None:
    model = small_model(attention=False)
    assert model.attention is None
    assert not any(isinstance(m, AdditiveAttention) for m in model.modules())
    source = padded_sources()
    encoded = model.encode(source)
    assert encoded.projected_keys is None
    # c = [h->_Tx ; h<-_1]: the forward state at each sentence's last real token, the backward one at its first
    lengths = torch.tensor([6, 3, 4])
    assert_close(encoded.summary[:, :5], encoded.annotations[torch.arange(3), lengths - 1, :5])
    assert_close(encoded.summary[:, 5:], encoded.annotations[:, 0, 5:])
    state = model.start_state(encoded)
    previous = torch.full((3,), BOS_INDEX)
    for _ in range(3):
        _, state, context, weights = model.decode_step(previous, state, encoded)
        assert weights is None and torch.equal(context, encoded.summary)
    # and no alignment model: the difference is exactly W_a (7x5), U_a (7x10) with its bias (7) and v_a (7)
    with_attention = small_model()
    assert sum(p.numel() for p in with_attention.parameters()) - sum(p.numel() for p in model.parameters()) == 7 * 5 + 7 * 10 + 7 + 7


# ------------------------------------------------------------------ sizes

@pytest.mark.parametrize("options", [{}, {"attention": False}, {"cell": "gru"}, {"cell": "gru", "attention": False}])
def test_parameter_count_formula_matches_the_built_model(options: dict) -> None:
    model = small_model(**options)
    hparams = model.hparams
    assert sum(p.numel() for p in model.parameters()) == parameter_count(**{k: hparams[k] for k in COUNT_KEYS})


@pytest.mark.parametrize("name, expected", [("rnnsearch50", 80_452_000), ("rnnencdec50", 77_450_000)])
def test_paper_sized_rnnsearch50(name: str, expected: int) -> None:
    settings = PAPER_CONFIGS[name]
    assert parameter_count(**{k: settings[k] for k in COUNT_KEYS}) == expected
    with torch.device("meta"):  # 80 million parameters counted without allocating them
        model = BahdanauSeq2Seq.paper_sized(name)
    assert sum(p.numel() for p in model.parameters()) == expected
    # where RNNsearch-50's parameters are: the two embeddings and the softmax layer hold more than 60%
    words = 2 * 30_000 * 620 + 30_000 * 500 + 30_000
    assert words / expected > 0.6


def test_paper_sized_flops_are_the_closed_form_of_fifty_word_sentences() -> None:
    with torch.device("meta"):
        model = BahdanauSeq2Seq.paper_sized()
    source, decoder_input = model.example_input_array
    assert source.shape == decoder_input.shape == (1, 51)  # 50 words and <eos>; <bos> and 50 words
    S, T, m, n, a, l, V, G = 51, 51, 620, 1000, 1000, 500, 30_000, 3  # G: the GRU's three blocks
    encoder = 2 * S * 2 * G * n * (m + n) + S * 2 * (2 * n) * a + 2 * n * n  # two directions, U_a h_j once, W_s
    per_step = (
        2 * n * a + S * 2 * a + S * 2 * (2 * n)  # W_a s_{i-1}, v_a^T tanh(.) for each j, sum_j a_ij h_j
        + 2 * G * n * (m + 2 * n + n)  # the decoder cell on [E y; c] and s_{i-1}
        + 2 * (2 * l) * (n + m + 2 * n)  # t~_i = U_o s_i + V_o E y + C_o c_i
        + 2 * l * V  # the softmax layer
    )  # fmt: skip
    assert model.forward_flops() == encoder + T * per_step


def test_the_count_from_short_sentences_is_the_count_of_the_whole_pair() -> None:
    model = small_model()
    model.example_input_array = (padded_sources()[:1], torch.tensor([[BOS_INDEX, 4, 5, 6, 7]]))
    assert model.forward_flops() == BaseModel.forward_flops(model) > 0


def test_bad_options_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="cell must be one of"):
        small_model(cell="rnn")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        small_model(hidden_size=0)
    with pytest.raises(ValueError, match="reset_after"):
        small_model(fused=True, cell="gru")


# ------------------------------------------------------------------ the CLI and the length curve

TINY = [*QUIET, "--figures", "false", "--trainer.max_epochs", "1", "--data.init_args.min_length", "2",
        "--data.init_args.max_length", "4", "--model.init_args.target_length", "6", "--data.init_args.train_size", "64",
        "--data.init_args.val_size", "16", "--data.init_args.test_size", "16", "--model.init_args.hidden_size", "8"]  # fmt: skip


@pytest.mark.parametrize("name", ["reversal_attention", "reversal_no_attention_weakness"])
def test_fit_runs_through_the_cli_and_checks_its_claim(workdir: Path, name: str) -> None:
    cli = main(["fit", "--config", config(f"lstm_attention/{name}"), *TINY])
    assert isinstance(cli.model, BahdanauSeq2Seq) and cli.model.use_attention == (name == "reversal_attention")
    result = cli.claim_result
    assert result is not None and result.observed is not None and 0.0 <= result.observed <= 1.0
    logged = (Path(cli.log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val_token_accuracy", "val_sequence_accuracy", "val_bleu", "val_loss", "train_loss"} <= set(logged)
    assert {"test_token_accuracy", "test_sequence_accuracy", "test_bleu"} <= set(cli.trainer.callback_metrics)
    if cli.model.use_attention:  # the test's greedy decode left its weights: (batch, steps, source steps)
        weights = cli.model.attention.attention_weights
        assert weights.ndim == 3 and weights.shape[2] == 5


def test_the_gru_encoder_decoder_weakness_is_this_network_with_gru_cells(workdir: Path) -> None:
    cli = main(["fit", "--config", config("gru/encoder_decoder_without_attention_weakness"), *TINY])
    model = cli.model
    assert isinstance(model, BahdanauSeq2Seq) and not model.use_attention
    assert isinstance(model.decoder_cell, GRUCell) and cli.claim_result.observed is not None


def test_a_bad_cell_in_the_cli_is_one_line_and_status_2(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config("lstm_attention/reversal_attention"), *TINY, "--model.init_args.cell", "rnn"])
    assert exit_info.value.code == 2
    assert "cell" in capsys.readouterr().err


def test_length_report_measures_each_length_and_draws_the_curve(tmp_path: Path) -> None:
    model = small_model()
    curves = length_report({"attention": model, "no attention": small_model(attention=False)}, [2, 5, 9], num_symbols=6,
                           trained=(1, 5), path=tmp_path / "length.png", samples=8)  # fmt: skip
    assert set(curves) == {"attention", "no attention"} and set(curves["attention"]) == {2, 5, 9}
    assert all(0.0 <= v <= 1.0 for curve in curves.values() for v in curve.values())
    assert (tmp_path / "length.png").stat().st_size > 10_000
    # the same draw every time: a curve is a measurement, not a sample of one
    assert accuracy_by_length(model, [2, 5, 9], 6, samples=8) == curves["attention"]


# ------------------------------------------------------------------ the claims (slow)

@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", ["reversal_attention", "reversal_no_attention_weakness"])
def test_reversal_claims_hold_on_other_seeds(workdir: Path, name: str, seed: int) -> None:
    """Seed 0, the config's own, is run by ``ai-scratch reproduce``; here the other seeds it was
    calibrated on. The two bars (>= 0.9 with attention, <= 0.5 without) put attention at least 0.4
    above the same network without it on every seed, and its weights trace the anti-diagonal."""
    cli = main(["fit", "--config", config(f"lstm_attention/{name}"), *QUIET, "--figures", "false", "--seed_everything", str(seed)])
    assert cli.claim_result.reproduced, cli.claim_result.line()
    assert not math.isnan(cli.claim_result.observed)
    if name == "reversal_attention":
        assert_attention_is_the_anti_diagonal(cli.model, cli.datamodule)


@pytest.mark.slow
@pytest.mark.seeds
def test_the_gru_encoder_decoder_cannot_reverse_without_attention_and_can_with_it(workdir: Path) -> None:
    """Cho et al. (2014b)'s weakness of the GRU's own network, and Bahdanau et al.'s remedy: the same
    GRUs with attention are at least 0.3 above (calibrated 1.000 against 0.297 on seed 0)."""
    name = config("gru/encoder_decoder_without_attention_weakness")
    observed = {}
    for attention in (False, True):
        cli = main(["fit", "--config", name, *QUIET, "--figures", "false", "--seed_everything", "1", "--model.init_args.attention", str(attention).lower()])
        observed[attention] = cli.claim_result.observed
        assert cli.claim_result.reproduced != attention, cli.claim_result.line()
    assert observed[True] - observed[False] >= 0.3, observed


def assert_attention_is_the_anti_diagonal(model: BahdanauSeq2Seq, datamodule) -> None:
    """Output symbol i of a reversal is source symbol L - 1 - i: the weight of each output step peaks
    there or one position off, on nine tenths of them. One off is the rule rather than the exception:
    seed 0's model peaks one position later on about three quarters of the steps, on the annotation
    whose forward half has just read the symbol."""
    source, target = (torch.as_tensor(array) for array in datamodule.arrays("test"))
    model.eval()
    with torch.no_grad():
        model(source.to(model.device), target[:, :-1].to(model.device))  # teacher-forced: every step's weights
    weights = model.attention.attention_weights.cpu()  # (batch, target steps, source steps)
    lengths = (source > 2).sum(dim=1)  # symbols, <eos> and padding left out
    hits = total = 0
    for row, length in enumerate(lengths.tolist()):
        peaks = weights[row, :length].argmax(dim=1)  # the steps that write symbols
        expected = torch.arange(length - 1, -1, -1)
        hits += int(((peaks - expected).abs() <= 1).sum())
        total += length
    assert hits / total >= 0.9, f"{hits / total:.3f} of the output steps peak on the mirrored source position"


@pytest.mark.slow
def test_quality_against_length_in_miniature(workdir: Path) -> None:
    """Figure 2 in miniature (bahdanau_figures.py's docstring): both trained on lengths 1 to 32."""
    trained = {}
    for label, name in (("attention", "reversal_attention"), ("no attention", "reversal_no_attention_weakness")):
        cli = main(["fit", "--config", config(f"lstm_attention/{name}"), *QUIET, "--figures", "false",
                    "--data.init_args.min_length", "1"])  # fmt: skip
        trained[label] = BahdanauSeq2Seq.load_from_checkpoint(cli.trainer.checkpoint_callback.best_model_path)
    curves = length_report(trained, [4, 16, 24, 32, 40], num_symbols=8, trained=(1, 32), path=workdir / "length.png")
    attention, fixed = curves["attention"], curves["no attention"]
    # without attention: short sequences fit in the fixed vector, long ones do not
    assert fixed[4] >= 0.9 and fixed[32] <= 0.45, fixed
    assert fixed[4] > fixed[16] > fixed[32], fixed
    # with attention: the quality holds over the trained lengths, far above the fixed vector's
    assert min(attention[n] for n in (4, 16, 24)) >= 0.9, attention
    assert attention[24] - fixed[24] >= 0.4, curves
    # what does not reproduce: past the trained lengths attention falls too (the paper's curve stays flat)
    assert attention[40] <= 0.9, attention
