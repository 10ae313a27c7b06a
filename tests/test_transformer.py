"""The Transformer (Vaswani et al., 2017): attention against PyTorch's, masks, positions, the
warm-up schedule, label smoothing, the base model's size, the L^2 memory, and its experiments
through the real CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ai_scratch.base import BaseModel
from ai_scratch.cli import main
from ai_scratch.sequence_models.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention
from ai_scratch.sequence_models.tasks import PAD_INDEX, Seq2SeqModel
from ai_scratch.sequence_models.transformer import (
    BASE_PARAMETERS,
    Transformer,
    TransformerLanguageModel,
    sinusoidal_positional_encoding,
    warmup_factor,
)
from ai_scratch.sequence_models import transformer_figures
from ai_scratch.sequence_models.transformer_figures import attention_memory_figure, attention_memory_table, fitted_slope
from conftest import config

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def tokens(batch: int, length: int, vocab: int = 13, seed: int = 0) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def twin(model: nn.Module, **fused: bool) -> nn.Module:
    """The same model with the other attention path, holding the same weights."""
    other = type(model)(**{**model.hparams, **fused})
    other.load_state_dict(model.state_dict())
    return other.eval()


# ---------------------------------------------------------------------------- attention
MASKS = {
    "none": lambda b, l: None,
    "causal": lambda b, l: causal_mask(l),
    "padding": lambda b, l: padding_mask(torch.tensor([[1] * l, [1] * (l - 3) + [0] * 3])),
    "causal and padding": lambda b, l: causal_mask(l) & padding_mask(torch.tensor([[1] * l, [1] * (l - 3) + [0] * 3])),
}


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_hand_and_fused_attention_agree_on_outputs_and_gradients(mask_name: str) -> None:
    torch.manual_seed(0)
    hand = MultiHeadAttention(32, 4, fused=False)
    fused = MultiHeadAttention(32, 4, fused=True)
    fused.load_state_dict(hand.state_dict())
    x = torch.randn(2, 7, 32)
    mask = MASKS[mask_name](2, 7)
    outputs, gradients = [], []
    for module in (hand, fused):
        inputs = x.clone().requires_grad_()
        out = module(inputs, inputs, inputs, mask)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out)
        gradients.append([inputs.grad, *(p.grad for p in module.parameters())])
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-4)
    for ours, theirs in zip(*gradients, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert hand.attention_weights is not None and fused.attention_weights is None


def test_multi_head_attention_equals_nn_multihead_attention_with_copied_weights() -> None:
    torch.manual_seed(1)
    reference = nn.MultiheadAttention(32, 4, batch_first=True)
    ours = MultiHeadAttention(32, 4)
    w_q, w_k, w_v = reference.in_proj_weight.chunk(3)
    b_q, b_k, b_v = reference.in_proj_bias.chunk(3)
    with torch.no_grad():
        for linear, weight, bias in ((ours.w_q, w_q, b_q), (ours.w_k, w_k, b_k), (ours.w_v, w_v, b_v),
                                     (ours.w_o, reference.out_proj.weight, reference.out_proj.bias)):  # fmt: skip
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
    query, memory = torch.randn(3, 5, 32), torch.randn(3, 9, 32)
    source = torch.tensor([[4] * 9, [4] * 6 + [0] * 3, [4] * 2 + [0] * 7])
    # nn.MultiheadAttention's boolean masks say True where attention is *not* allowed
    expected, expected_weights = reference(query, memory, memory, key_padding_mask=source == 0, average_attn_weights=False)
    torch.testing.assert_close(ours(query, memory, memory, padding_mask(source)), expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.attention_weights, expected_weights, atol=1e-6, rtol=1e-4)
    causal_expected, _ = reference(query, query, query, attn_mask=~causal_mask(5))
    torch.testing.assert_close(ours(query, query, query, causal_mask(5)), causal_expected, atol=1e-5, rtol=1e-4)


def test_attention_weights_are_stored_detached_with_the_documented_shape() -> None:
    attention = MultiHeadAttention(16, 2)
    x = torch.randn(3, 6, 16, requires_grad=True)
    y = torch.randn(3, 4, 16)
    attention(y, x, x, causal_mask(6)[:4])
    weights = attention.attention_weights
    assert weights.shape == (3, 2, 4, 6) and not weights.requires_grad  # (batch, heads, queries, keys)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 4))
    assert (weights[..., 0, 1:] == 0).all()  # the first query sees only the first key


def test_scaled_dot_product_attention_is_equation_1() -> None:
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 4)
    out, weights = scaled_dot_product_attention(q, k, v)
    expected_weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8), dim=-1)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(out, expected_weights @ v)


# ---------------------------------------------------------------------------- masks
def test_a_padded_source_position_changes_nothing() -> None:
    torch.manual_seed(0)
    model = Transformer(dropout=0.0).eval()
    source, target = tokens(4, 6), tokens(4, 7, seed=1)
    padded = F.pad(source, (0, 5), value=PAD_INDEX)  # five more <pad> columns
    with torch.no_grad():
        torch.testing.assert_close(model(padded, target), model(source, target), atol=1e-5, rtol=1e-5)
        # and the embedding of <pad> itself is never read: scramble it
        model.source_embedding.weight[PAD_INDEX].normal_()
        torch.testing.assert_close(model(padded, target), model(source, target), atol=1e-5, rtol=1e-5)


def test_causal_decoder_the_future_changes_nothing() -> None:
    torch.manual_seed(0)
    model = Transformer(dropout=0.0).eval()
    source, target = tokens(2, 6), tokens(2, 9, seed=1)
    changed = target.clone()
    changed[:, 5:] = tokens(2, 4, seed=2)
    with torch.no_grad():
        before, after = model(source, target), model(source, changed)
    torch.testing.assert_close(before[:, :5], after[:, :5], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_language_model_the_future_changes_nothing() -> None:
    torch.manual_seed(0)
    model = TransformerLanguageModel(vocab_size=20, context_size=12, dropout=0.0).eval()
    text = tokens(2, 12, vocab=20)
    changed = text.clone()
    changed[:, 7] = (text[:, 7] + 1) % 20
    with torch.no_grad():
        before, after = model(text), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before[:, 7:], after[:, 7:])


# ---------------------------------------------------------------------------- positions
def test_sinusoidal_positional_encoding_is_the_papers_formula() -> None:
    d_model = 16
    encoding = sinusoidal_positional_encoding(50, d_model)
    for pos in (0, 1, 7, 49):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert encoding[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert encoding[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)
    assert sinusoidal_positional_encoding(3, 7).shape == (3, 7)  # an odd width too


def test_without_positional_encodings_the_encoder_sees_a_bag_of_tokens() -> None:
    """Permuting the source permutes nothing the decoder can read: its scores stay the same."""
    torch.manual_seed(0)
    source, target = tokens(2, 8), tokens(2, 5, seed=1)
    permuted = source[:, torch.randperm(8)]
    for kind, same in (("none", True), ("sinusoidal", False)):
        model = Transformer(positional_encoding=kind, dropout=0.0).eval()
        with torch.no_grad():
            assert torch.allclose(model(source, target), model(permuted, target), atol=1e-5) is same, kind


# ---------------------------------------------------------------------------- training
def test_warmup_schedule_values() -> None:
    d_model, warmup = 512, 4000
    assert warmup_factor(1, d_model, warmup) == pytest.approx(512**-0.5 * 4000**-1.5)
    assert warmup_factor(warmup, d_model, warmup) == pytest.approx(512**-0.5 * 4000**-0.5)  # the peak, about 7e-4
    assert warmup_factor(16384, d_model, warmup) == pytest.approx(512**-0.5 / 128)  # step^-0.5 after the warm-up
    rates = [warmup_factor(s, d_model, warmup) for s in range(1, 10000, 50)]
    peak = max(range(len(rates)), key=rates.__getitem__)
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1])) and all(a > b for a, b in zip(rates[peak:], rates[peak + 1 :]))


def test_optimizer_is_adam_with_the_papers_constants_and_steps_the_rate_every_step() -> None:
    model = Transformer(warmup_steps=10, lr_scale=2.0)
    configured = model.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.Adam) and group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9
    for step in range(1, 30):
        assert group["lr"] == pytest.approx(2.0 * 64**-0.5 * min(step**-0.5, step * 10**-1.5))
        optimizer.step()
        scheduler.step()
    constant = Transformer(lr_schedule="constant", learning_rate=3e-4).configure_optimizers()
    assert constant.param_groups[0]["lr"] == 3e-4


def test_label_smoothing_is_the_papers_epsilon_and_what_the_loss_computes() -> None:
    model = Transformer()
    assert model.label_smoothing == 0.1
    scores, target = torch.randn(2, 4, 13), torch.tensor([[3, 4, 2, 0], [5, 6, 7, 2]])
    log_p = torch.log_softmax(scores, dim=-1)
    keep = target != PAD_INDEX
    nll = -log_p.gather(-1, target[..., None]).squeeze(-1)
    uniform = -log_p.mean(-1)  # cross-entropy with the uniform distribution over the vocabulary
    expected = ((0.9 * nll + 0.1 * uniform)[keep]).mean()
    assert model.criterion(scores, target).item() == pytest.approx(expected.item(), rel=1e-5)
    assert model.criterion(scores, target, smoothing=0.0).item() == pytest.approx(nll[keep].mean().item(), rel=1e-5)


# ---------------------------------------------------------------------------- sizes
def test_base_model_parameter_count_table_3_and_nn_transformer() -> None:
    model = Transformer.paper_sized()
    count = model.parameter_count()
    assert count == BASE_PARAMETERS == 63_082_496
    assert abs(count - 65e6) / 65e6 < 0.05  # Table 3: "65M"
    reference = nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)
    final_norms = sum(p.numel() for p in (*reference.encoder.norm.parameters(), *reference.decoder.norm.parameters()))
    embedding = 37_000 * 512  # shared by source, target and the output projection
    assert count == sum(p.numel() for p in reference.parameters()) - final_norms + embedding
    assert model.source_embedding is model.target_embedding


def test_paper_sized_flops_are_the_closed_form_of_a_256_token_pair() -> None:
    with torch.device("meta"):
        model = Transformer.paper_sized()
    assert sum(p.numel() for p in model.parameters()) == BASE_PARAMETERS
    source, decoder_input = model.example_input_array
    S, T, d, d_ff, V, N = source.shape[1], decoder_input.shape[1], 512, 2048, 37_000, 6
    assert (S, T) == (256, 255)
    encoder_layer = 8 * S * d * d + 4 * S * S * d + 4 * S * d * d_ff  # W^Q, W^K, W^V, W^O; Q K^T and A V; FFN
    decoder_layer = (8 * T * d * d + 4 * T * T * d  # masked self-attention
                     + 4 * T * d * d + 4 * S * d * d + 4 * T * S * d  # encoder-decoder attention: queries, keys and values
                     + 4 * T * d * d_ff)  # fmt: skip
    assert model.forward_flops() == N * encoder_layer + N * decoder_layer + 2 * T * d * V  # and the tied output projection


def test_the_count_from_one_layer_per_stack_is_the_full_count() -> None:
    model = Transformer(num_encoder_layers=3, num_decoder_layers=2)
    assert model.forward_flops() == BaseModel.forward_flops(model) > 0
    assert len(model.encoder_layers) == 3 and len(model.decoder_layers) == 2  # the stacks are put back


def test_embeddings_shared_when_one_vocabulary_and_tied_to_the_output() -> None:
    model = Transformer(source_vocab_size=20, target_vocab_size=13, target_length=12)
    assert model.source_embedding is not model.target_embedding
    hidden = torch.randn(2, 3, 64)
    torch.testing.assert_close(model.target_embedding.scores(hidden), hidden @ model.target_embedding.weight.T)
    with pytest.raises(ValueError, match="one vocabulary"):
        Transformer(source_vocab_size=20, target_vocab_size=13, share_embeddings=True)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        Transformer(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="positional_encoding"):
        Transformer(positional_encoding="learned")  # type: ignore[arg-type]


def test_fused_model_equals_hand_model() -> None:
    torch.manual_seed(0)
    hand = Transformer(dropout=0.0).eval()
    fused = twin(hand, fused=True)
    source, target = F.pad(tokens(3, 6), (0, 2)), tokens(3, 9, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(fused(source, target), hand(source, target), atol=1e-5, rtol=1e-4)
    lm = TransformerLanguageModel(vocab_size=20, context_size=10, dropout=0.0).eval()
    with torch.no_grad():
        text = tokens(2, 10, vocab=20)
        torch.testing.assert_close(twin(lm, fused=True)(text), lm(text), atol=1e-5, rtol=1e-4)


def test_greedy_decode_encodes_once_and_equals_the_generic_decoder() -> None:
    torch.manual_seed(0)
    model = Transformer(dropout=0.0).eval()
    source = F.pad(tokens(5, 7), (0, 2))
    ours = model.greedy_decode(source)
    assert ours.shape == (5, model.target_length - 1)
    assert torch.equal(ours, Seq2SeqModel.greedy_decode(model, source))


def test_language_model_generates_and_reports_the_transformers_info() -> None:
    model = TransformerLanguageModel(vocab_size=20, context_size=8)
    sample = model.generate(torch.tensor([3, 4, 5]), 12, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (15,) and int(sample.max()) < 20
    info = model.model_info()
    assert info["name"] == "transformer" and info["variant"] == "language_model" and info["parameter_count"] > 0
    assert "INFO" not in TransformerLanguageModel.__dict__  # one registered INFO per model name


# ---------------------------------------------------------------------------- the L^2 weakness
def test_attention_memory_grows_as_the_square_of_the_length(tmp_path: Path) -> None:
    table = attention_memory_table((128, 256, 512, 1024, 2048))
    assert [row["length"] for row in table] == [128, 256, 512, 1024, 2048]
    assert 1.8 <= fitted_slope(table, "hand_bytes", smallest=512) <= 2.2
    assert fitted_slope(table, "fused_bytes", smallest=512) < 1.5  # the fused kernel keeps no L x L matrix
    assert table[-1]["hand_bytes"] >= table[-1]["weights_bytes"]  # the weights are among what is kept
    attention_memory_figure(table).savefig(tmp_path / "attention_memory.png")
    assert (tmp_path / "attention_memory.png").stat().st_size > 10_000


def test_attention_memory_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert transformer_figures.main([str(tmp_path / "memory.png"), "--lengths", "32", "64", "128"]) == 0
    printed = capsys.readouterr().out
    assert "fitted slope" in printed and (tmp_path / "memory.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        transformer_figures.main(["--lengths", "64"])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------------------- through the CLI
def test_tiny_fit_through_the_cli(workdir: Path) -> None:
    tiny = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
            "--trainer.limit_test_batches", "1", "--figures", "false"]  # fmt: skip
    cli = main(["fit", "--config", config("transformer/reversal_strength"), *QUIET, *tiny])
    assert isinstance(cli.model, Transformer) and cli.claim_result is not None and cli.claim_result.observed is not None
    logged = cli.trainer.callback_metrics  # the claim's test run, after fit
    assert {"test_loss", "test_token_accuracy", "test_sequence_accuracy", "test_bleu"} <= set(logged)
    assert 0.0 <= float(logged["test_token_accuracy"]) <= 1.0
    header = (Path(cli.log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "val_loss", "val_token_accuracy", "val_sequence_accuracy", "val_bleu", "learning_rate"} <= set(header)
    lm = main(["fit", "--config", config("transformer/char_lm_pydoc"), *QUIET, *tiny])
    assert isinstance(lm.model, TransformerLanguageModel) and lm.claim_result.observed is not None
    assert math.isfinite(lm.claim_result.observed)  # val_perplexity


def test_bad_option_is_one_line_and_status_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config("transformer/reversal_strength"), *QUIET, "--model.init_args.num_heads", "5"])
    assert exit_info.value.code == 2
    assert "multiple of num_heads" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("experiment", ["reversal_strength", "without_positions_weakness", "char_lm_pydoc"])
@pytest.mark.parametrize("seed", [1, 2])
def test_claims_hold_over_seeds(workdir: Path, experiment: str, seed: int) -> None:
    """Seed 0, the config's own, is run by ``ai-scratch reproduce``; here the other seeds it was calibrated on."""
    cli = main(["fit", "--config", config(f"transformer/{experiment}"), *QUIET, "--figures", "false", "--seed_everything", str(seed)])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()


def test_the_weakness_is_the_strengths_model_without_positions() -> None:
    import yaml

    strength, weakness = (yaml.safe_load(Path(config(f"transformer/{name}")).read_text())
                          for name in ("reversal_strength", "without_positions_weakness"))  # fmt: skip
    assert strength["model"]["init_args"].pop("positional_encoding") == "sinusoidal"
    assert weakness["model"]["init_args"].pop("positional_encoding") == "none"
    assert strength["model"] == weakness["model"] and strength["data"] == weakness["data"] and strength["trainer"] == weakness["trainer"]


def test_a_fit_draws_the_attention_maps(workdir: Path) -> None:
    tiny = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.limit_test_batches", "1"]  # fmt: skip
    cli = main(["fit", "--config", config("transformer/reversal_strength"), *QUIET, *tiny])
    figures = {p.stem for p in (Path(cli.log_dir) / "figures").glob("*.png")}
    assert {"learning_curves", "gradient_flow"} <= figures and any(name.startswith("attention_maps") for name in figures), figures
