"""BERT (Devlin et al., 2018): the input embeddings, the encoder layer against PyTorch's, the padding
mask, the tied masked-LM output, BERT-base's parameter count, the phases and their rates, real fits
of each config through the CLI, the figures, bad input, and (slow) the claims and the spread of
fine-tuning over seeds."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ai_scratch.base import BaseModel
from ai_scratch.cli import main
from ai_scratch.modern_paradigm.bert import (
    BASE_CONFIG,
    BASE_ENCODER_PARAMETERS,
    INFO,
    Bert,
    BertLayer,
    parameter_count,
    warmup_linear_decay,
)
from ai_scratch.modern_paradigm.bert_figures import masked_positions
from conftest import config
from datamodules.text import CLS_INDEX, PAD_INDEX, SEP_INDEX

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
#: a BERT of width 16, one layer, on a few sentences: seconds
SMOKE = [
    "--model.hidden_size=16", "--model.num_layers=1", "--model.num_heads=2", "--data.labels=16", "--data.val_size=8",
    "--data.test_size=8", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
]  # fmt: skip
CONFIGS = ["bert/not_reproduced/pretraining_strength", "bert/from_scratch_weakness", "bert/masked_lm_pretraining"]


def tiny_bert(**options: Any) -> Bert:
    torch.manual_seed(0)
    return Bert(**{"vocab_size": 50, "hidden_size": 16, "num_layers": 2, "num_heads": 2, "max_positions": 12, **options})


def sentence_pair() -> torch.Tensor:
    return torch.tensor([[CLS_INDEX, 7, 8, 9, SEP_INDEX, 10, 11, SEP_INDEX, PAD_INDEX, PAD_INDEX]])


# ---------------------------------------------------------------------- the network
def test_the_input_is_the_sum_of_token_segment_and_position_embeddings() -> None:
    model = tiny_bert().eval()
    tokens = sentence_pair()
    embeddings = model.encoder.embeddings
    segments = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1, 1]])
    summed = embeddings.token.weight[tokens] + embeddings.segment.weight[segments] + embeddings.position.weight[:10][None]
    expected = nn.functional.layer_norm(summed, (16,), embeddings.norm.weight, embeddings.norm.bias, eps=1e-12)
    torch.testing.assert_close(embeddings(tokens, segments), expected)
    # segments come from the [SEP]s when not given: sentence B after the first one
    hidden, _ = model.encode(tokens)
    torch.testing.assert_close(hidden, model.encoder(tokens, segments)[0])


def test_our_layer_computes_nn_transformer_encoder_layer_with_the_same_weights() -> None:
    torch.manual_seed(0)
    ours = BertLayer(32, 4, 128, dropout=0.0, attention_dropout=0.0).eval()
    reference = nn.TransformerEncoderLayer(32, 4, 128, dropout=0.0, activation="gelu", layer_norm_eps=1e-12, batch_first=True).eval()
    attention = ours.self_attention
    with torch.no_grad():
        reference.self_attn.in_proj_weight.copy_(torch.cat([attention.w_q.weight, attention.w_k.weight, attention.w_v.weight]))
        reference.self_attn.in_proj_bias.copy_(torch.cat([attention.w_q.bias, attention.w_k.bias, attention.w_v.bias]))
        reference.self_attn.out_proj.load_state_dict(attention.w_o.state_dict())
        reference.linear1.load_state_dict(ours.feed_forward[0].state_dict())
        reference.linear2.load_state_dict(ours.feed_forward[2].state_dict())
        reference.norm1.load_state_dict(ours.attention_norm.state_dict())
        reference.norm2.load_state_dict(ours.output_norm.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    x = torch.randn(3, 9, 32)
    pads = torch.zeros(3, 9, dtype=torch.bool)
    pads[1, 6:] = True
    with torch.no_grad():
        expected = reference(x, src_key_padding_mask=pads)
        got = ours(x, (~pads)[:, None, None, :])
    torch.testing.assert_close(got[~pads], expected[~pads], atol=1e-5, rtol=1e-4)


def test_padding_changes_nothing_at_the_real_positions() -> None:
    model = tiny_bert().eval()
    tokens = sentence_pair()
    longer = torch.cat([tokens, torch.full((1, 2), PAD_INDEX)], dim=1)
    with torch.no_grad():
        short_hidden, short_pooled = model.encode(tokens)
        long_hidden, long_pooled = model.encode(longer)
        unmasked = model.encoder.layers[0](model.encoder.embeddings(longer, torch.zeros_like(longer)), None)
        masked = model.encoder.layers[0](model.encoder.embeddings(longer, torch.zeros_like(longer)), longer[:, None, None, :] != PAD_INDEX)
    torch.testing.assert_close(long_hidden[:, :8], short_hidden[:, :8])
    torch.testing.assert_close(long_pooled, short_pooled)
    assert not torch.allclose(unmasked[:, :8], masked[:, :8])  # without the mask the pads would be read
    weights = model.encoder.layers[0].self_attention.attention_weights
    assert weights is not None and float(weights[..., 8:].abs().max()) == 0.0


def test_the_masked_lm_output_is_the_token_embedding_plus_a_bias() -> None:
    model = tiny_bert()
    assert model.masked_lm.token_embedding.weight is model.encoder.embeddings.token.weight
    hidden = torch.randn(4, 16)
    expected = model.masked_lm.transform(hidden) @ model.encoder.embeddings.token.weight.T + model.masked_lm.bias
    torch.testing.assert_close(model.masked_lm_scores(hidden), expected)
    assert model.parameter_count() == parameter_count(50, 16, 2, 64, 12, num_classes=2)


def test_bert_base_has_the_papers_110m_parameters() -> None:
    with torch.device("meta"):  # no memory, no initialisation: the sizes alone
        base = Bert.paper_sized()
        with_nsp = Bert.paper_sized(next_sentence=True)
        reference_layer = nn.TransformerEncoderLayer(768, 12, 3072, activation="gelu")
    encoder = sum(p.numel() for p in base.encoder.parameters())
    assert encoder == BASE_ENCODER_PARAMETERS == 109_482_240
    assert encoder == pytest.approx(110e6, rel=0.01)  # Section 3: "Total Parameters=110M"
    layer = sum(p.numel() for p in reference_layer.parameters())
    embeddings = (30_522 + 512 + 2) * 768 + 2 * 768
    assert encoder == embeddings + 12 * layer + 768 * 768 + 768  # the reference's layers, our embeddings and pooler
    assert base.parameter_count() == parameter_count(**{k: BASE_CONFIG[k] for k in ("vocab_size", "hidden_size", "num_layers",
                                                        "intermediate_size", "max_positions", "type_vocab_size")}, num_classes=2)  # fmt: skip
    assert with_nsp.parameter_count() - base.parameter_count() == 768 * 2 + 2


def test_bert_base_reads_512_tokens_for_the_closed_form_of_its_layers() -> None:
    with torch.device("meta"):
        model = Bert.paper_sized()
    L, H, N = 512, 768, 12
    assert tuple(model.example_input_array.shape) == (1, L)
    layer = 8 * L * H * H + 4 * L * L * H + 16 * L * H * H  # W^Q, W^K, W^V, W^O; Q K^T and A V; the 4H feed-forward
    assert model.forward_flops() == N * layer + 2 * H * H + 2 * H * 2  # the pooler on [CLS] and the two-class head


def test_the_count_from_one_layer_is_the_full_count() -> None:
    model = Bert(vocab_size=50, hidden_size=16, num_layers=3, num_heads=2, max_positions=12)
    assert model.forward_flops() == BaseModel.forward_flops(model) > 0
    assert len(model.encoder.layers) == 3


def test_the_rate_warms_up_then_decays_linearly_to_zero() -> None:
    factors = [warmup_linear_decay(step, 100, 10) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0) and max(factors) == 1.0
    assert factors[10] == pytest.approx(1.0) and factors[55] == pytest.approx(0.5) and factors[99] == pytest.approx(1 / 90)


def test_info_fills_every_field() -> None:
    assert INFO.name == "bert" and INFO.module == 6 and INFO.category == "modern" and INFO.year_introduced == 2018
    assert all(value not in ("", (), None) for value in INFO.to_dict().values())


def test_masked_positions_are_whole_words() -> None:
    pieces = ["[CLS]", "the", "assign", "##ment", ",", "binds", "names", "[SEP]"]
    chosen = masked_positions(pieces, 2)
    assert len(chosen) == 2 and set(chosen) <= {1, 2, 5, 6}


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hidden_size": 30, "num_heads": 4}, r"hidden_size must be a multiple of num_heads"),
        ({"pretraining_epochs": -1}, r"pretraining_epochs must be an integer >= 0"),
        ({"pretraining_epochs": 2, "pretrained": "x.ckpt"}, r"pretrained and pretraining_epochs exclude each other"),
        ({"learning_rate": 0.0}, r"learning_rate must be positive"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
    ],
)
def test_bad_arguments_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_bert(**options)


def test_a_missing_pretrained_checkpoint_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"pretrained: no checkpoint file at 'nowhere.ckpt'"):
        tiny_bert(pretrained="nowhere.ckpt").setup("fit")


def test_sequences_longer_than_the_positions_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"longer than max_positions=12"):
        tiny_bert()(torch.full((1, 13), 7))


# ---------------------------------------------------------------------- real fits
def metrics_rows(log_dir: str) -> list[dict[str, str]]:
    with open(Path(log_dir) / "metrics.csv") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("name", CONFIGS)
def test_each_config_fits_at_smoke_size(workdir: Path, name: str) -> None:
    """Each config at smoke size; the strength's fit (both phases) draws its figures too."""
    pretrains = name != "bert/from_scratch_weakness"
    fine_tunes = name != "bert/masked_lm_pretraining"
    epochs = {"bert/not_reproduced/pretraining_strength": ["--trainer.max_epochs=2", "--model.pretraining_epochs=1"],
              "bert/from_scratch_weakness": ["--trainer.max_epochs=1", "--figures=false"],
              "bert/masked_lm_pretraining": ["--trainer.max_epochs=1", "--model.pretraining_epochs=1", "--figures=false"]}[name]  # fmt: skip
    cli = main(["fit", "--config", config(name), *QUIET, *SMOKE, *epochs])
    assert cli.claim_result is not None and cli.claim_result.observed is not None
    rows = metrics_rows(cli.log_dir)
    logged = {key for row in rows for key, value in row.items() if value}
    assert {"val_accuracy", "learning_rate"} <= logged
    if pretrains:
        assert {"train_mlm_loss", "train_mlm_accuracy", "val_mlm_accuracy"} <= logged
    assert any(row.get("train_accuracy") for row in rows) == fine_tunes
    if name == "bert/not_reproduced/pretraining_strength":
        figures = {path.name for path in (Path(cli.log_dir) / "figures").glob("*.png")}
        assert {"attention_maps.png", "attention_heads.png", "masked_token_predictions.png", "learning_curves.png"} <= figures, figures


@pytest.mark.slow
def test_fine_tuning_can_start_from_a_pretraining_checkpoint(workdir: Path) -> None:
    pretraining = main(["fit", "--config", config("bert/masked_lm_pretraining"), *QUIET, *SMOKE, "--trainer.max_epochs=1",
                        "--model.pretraining_epochs=1", "--figures=false"])  # fmt: skip
    checkpoint = pretraining.trainer.checkpoint_callback.best_model_path
    before = pretraining.model.encoder.layers[0].feed_forward[0].weight.detach().clone()
    cli = main(["fit", "--config", config("bert/from_scratch_weakness"), *QUIET, *SMOKE, "--trainer.max_epochs=1", "--figures=false",
                f"--model.pretrained={checkpoint}", "--trainer.limit_train_batches=0"])  # fmt: skip
    torch.testing.assert_close(cli.model.encoder.layers[0].feed_forward[0].weight, before)


def test_a_model_vocabulary_other_than_the_datas_is_one_line(workdir: Path) -> None:
    with pytest.raises(ValueError, match=r"vocab_size is 1999 but the data's vocabulary has 2000 word pieces: set --model.vocab_size=2000"):
        main(["fit", "--config", config("bert/from_scratch_weakness"), *QUIET, *SMOKE, "--trainer.max_epochs=1", "--figures=false",
              "--model.vocab_size=1999"])  # fmt: skip


def test_pretraining_without_reloading_the_loaders_is_one_line(workdir: Path) -> None:
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs=1"):
        main(["fit", "--config", config("bert/not_reproduced/pretraining_strength"), *QUIET, *SMOKE, "--trainer.max_epochs=2", "--figures=false",
              "--model.pretraining_epochs=1", "--trainer.reload_dataloaders_every_n_epochs=0"])  # fmt: skip


# ---------------------------------------------------------------------- the claims (slow)
#: the strength's claim (10 points over the from-scratch bar) did not reproduce at this scale on
#: seeds 0-2 (configs/bert/not_reproduced/pretraining_strength.yaml's header): expected to fail, strictly, so that
#: a change that makes it hold is noticed
NOT_REPRODUCED = pytest.mark.xfail(strict=True, reason="pre-training's 10-point gain did not reproduce at CPU scale (seeds 0-2)")


@pytest.mark.slow
@pytest.mark.seeds
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", [pytest.param(CONFIGS[0], marks=NOT_REPRODUCED), *CONFIGS[1:]])
def test_the_claims_hold_on_other_seeds(workdir: Path, name: str, seed: int) -> None:
    cli = main(["fit", "--config", config(name), *QUIET, "--figures=false", f"--seed_everything={seed}"])
    assert cli.claim_result is not None and cli.claim_result.reproduced, cli.claim_result.line()


@pytest.mark.slow
@pytest.mark.seeds
def test_fine_tuning_on_few_labels_spreads_over_seeds(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Section 4.1 of the paper: fine-tuning BERT-large on small data sets "was sometimes unstable", so the authors
    ran several restarts. Here: one pre-trained encoder, fine-tuned from it on the same 128 labels
    with five seeds (the classifier's initialisation, dropout and batch order differ); the test
    accuracies are reported, and they differ."""
    pretraining = main(["fit", "--config", config("bert/masked_lm_pretraining"), *QUIET, "--figures=false"])
    checkpoint = pretraining.trainer.checkpoint_callback.best_model_path
    accuracies = []
    for seed in range(5):
        cli = main(["fit", "--config", config("bert/not_reproduced/pretraining_strength"), *QUIET, "--figures=false", f"--seed_everything={seed}",
                    "--model.pretraining_epochs=0", f"--model.pretrained={checkpoint}", "--trainer.max_epochs=20"])  # fmt: skip
        accuracies.append(float(cli.claim_result.observed))
    spread = max(accuracies) - min(accuracies)
    with capsys.disabled():
        print(f"\nfine-tuning test accuracy over seeds 0-4: {[round(a, 3) for a in accuracies]}, range {spread:.3f}, "
              f"standard deviation {statistics.stdev(accuracies):.3f}")  # fmt: skip
    assert spread > 0.0
