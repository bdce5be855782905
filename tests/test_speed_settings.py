"""The loop's speed settings, padding_free and torch_compile (both off by default): on and off, a run trains on
the same examples in the same order and ends with the same metrics (float tolerance), and each is a logged,
validated setting.

The model here is the smoke BERT with dropout off: with dropout on, the settings draw their dropout masks over
other shapes (one packed row, or batches padded to a bucket), which is the same distribution with other draws,
so only without dropout are the two runs the same computation.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from orchestrator.sweep import main
from trainables.config import ConfigError, TrainConfig
from trainables.data import load_tokenized, make_collator
from trainables.loop import train_and_evaluate
from trainables.models import load_classifier
from trainables.training import compilation, padding_free
from trainables.training.data_order import train_loader
from trainables.training.distributed import local_context
from trainables.training.speed import check_speed_settings

LANGUAGES = ("en", "de", "fr")  # English and two targets: the runs' evaluations take seconds
# What the runs' results are compared on: every score of the kept weights and what was trained on.
COMPARED = ("dev_acc", "best_step", "test_acc_avg", "test_acc_avg_en", "train_samples", "train_tokens",
            *(f"test_acc_{lang}" for lang in LANGUAGES))


@pytest.fixture(scope="module")
def no_dropout_model(smoke_model, tmp_path_factory) -> str:
    """The smoke model (same weights and tokenizer) with every dropout probability 0."""
    target = tmp_path_factory.mktemp("no-dropout") / "model"
    shutil.copytree(smoke_model, target)
    config = json.loads((target / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (target / "config.json").write_text(json.dumps(config))
    return str(target)


@pytest.fixture
def short_run(smoke_train_config, no_dropout_model) -> TrainConfig:
    """30 steps of batch 16 on generated XNLI, evaluated at 15 and 30 on English and two targets: seconds."""
    return smoke_train_config.replace(model=no_dropout_model, max_steps=30, per_device_batch_size=16,
                                      eval_every_steps=15, languages=LANGUAGES)


def run(cfg: TrainConfig) -> tuple[dict, list[dict]]:
    reports: list[dict] = []
    final = train_and_evaluate(cfg, report=reports.append)
    return final, reports


def assert_same_run(on: tuple[dict, list[dict]], off: tuple[dict, list[dict]]) -> None:
    (final_on, curve_on), (final_off, curve_off) = on, off
    assert [r["step"] for r in curve_on] == [r["step"] for r in curve_off]
    assert [r["train_loss"] for r in curve_on[:-1]] == pytest.approx([r["train_loss"] for r in curve_off[:-1]],
                                                                     rel=1e-3)
    assert {k: final_on[k] for k in COMPARED} == pytest.approx({k: final_off[k] for k in COMPARED}, abs=1e-6)


def test_padding_free_trains_the_same_run(short_run):
    assert_same_run(run(short_run.replace(padding_free=True)), run(short_run))


def test_torch_compile_trains_the_same_run(short_run, monkeypatch):
    """The compiled step on CPU with dynamo and AOTAutograd (the graph capture, one graph per bucket width, the
    compiled backward) but without inductor's code generation, which takes minutes on two CPU cores; on a GPU
    the setting runs inductor (``compilation.BACKEND``), and bench/gpu_report.py compares it there."""
    monkeypatch.setattr(compilation, "BACKEND", "aot_eager")
    assert_same_run(run(short_run.replace(torch_compile=True)), run(short_run))


def test_packed_batches_hold_the_padded_batches_tokens_in_the_same_order(short_run):
    """Batch for batch, the packed loader yields the same examples as the padded one, without padding."""
    data = load_tokenized(short_run.tokenized_path)["train_en"]
    collate = make_collator(short_run.model)
    padded = train_loader(data, short_run, local_context(), collate)
    packed = train_loader(data, short_run, local_context(), padding_free.Flattening(collate))
    for index, (plain, flat) in enumerate(zip(padded, packed)):
        mask = plain["attention_mask"].bool()
        assert torch.equal(flat["input_ids"][0], plain["input_ids"][mask])
        assert torch.equal(flat["token_type_ids"][0], plain["token_type_ids"][mask])
        assert torch.equal(flat["labels"], plain["labels"])
        assert flat[padding_free.OFFSETS].tolist() == [0, *torch.cumsum(mask.sum(1), 0).tolist()]
        assert int(flat["attention_mask"].sum()) == int(mask.sum())  # the tokens the loop counts
        if index == 5:
            break


@pytest.mark.parametrize("kind", ["sequence", "token"])
def test_packed_loss_equals_the_models_own_loss(no_dropout_model, kind):
    """One batch of sequences of mixed lengths: the packed forward's loss is the padded model's, for a sentence
    task (pooled first tokens) and a token task (labels flattened like the tokens)."""
    model = padding_free.enable(load_classifier(no_dropout_model, 3, seed=1, kind=kind))
    generator = torch.Generator().manual_seed(0)
    examples = []
    for length in (5, 12, 7, 3):
        ids = [2, *torch.randint(5, 1000, (length - 2,), generator=generator).tolist(), 3]
        labels = torch.randint(0, 3, (length,), generator=generator).tolist() if kind == "token" else length % 3
        if kind == "token":
            labels[0] = -100
        examples.append({"input_ids": ids, "attention_mask": [1] * length, "labels": labels,
                         "token_type_ids": [0] * (length // 2) + [1] * (length - length // 2)})
    batch = make_collator(no_dropout_model, token_labels=kind == "token")(examples)
    expected = model(**batch).loss
    packed = padding_free.packed_loss(model, padding_free.flatten(batch), token_labels=kind == "token")
    assert float(packed) == pytest.approx(float(expected), rel=1e-5)


def test_bucket_padding_gives_few_widths_and_masks_what_it_adds(short_run):
    assert compilation.bucket_widths(32, 128) == [32, 64, 96, 128]
    assert compilation.bucket_widths(32, 100) == [32, 64, 96, 100]
    assert [compilation.bucket_width(n, 32, 100) for n in (1, 32, 33, 97, 100)] == [32, 32, 64, 100, 100]
    data = load_tokenized(short_run.tokenized_path)["train_en"]
    collate = make_collator(short_run.model)
    bucketed = compilation.BucketPadding(collate, bucket=16, max_length=64, pad_token_id=0)
    examples = [data[i] for i in range(8)]
    plain, padded = collate(examples), bucketed(examples)
    width = plain["input_ids"].shape[1]
    assert padded["input_ids"].shape[1] == compilation.bucket_width(width, 16, 64)
    assert torch.equal(padded["input_ids"][:, :width], plain["input_ids"])
    assert int(padded["attention_mask"].sum()) == int(plain["attention_mask"].sum())
    assert (padded["input_ids"][:, width:] == 0).all()


def test_settings_are_logged_and_validated(short_run):
    params = short_run.replace(padding_free=True).flat_params()
    assert params["padding_free"] is True and params["torch_compile"] is False and params["compile_bucket"] == 32
    assert TrainConfig().padding_free is False and TrainConfig().torch_compile is False  # off until measured
    with pytest.raises(ConfigError, match="padding_free and torch_compile cannot both be on"):
        short_run.replace(padding_free=True, torch_compile=True).validate()
    with pytest.raises(ConfigError, match="compile_bucket must be > 0"):
        short_run.replace(compile_bucket=0).validate()
    from trainables.methods import get_method

    with pytest.raises(ConfigError, match="one worker per trial"):
        check_speed_settings(short_run.replace(padding_free=True), get_method("baseline"), workers=2)
    check_speed_settings(short_run.replace(padding_free=True), get_method("btf"), workers=1)  # a plain loss


@pytest.mark.parametrize("args, expected", [
    (["salt_xnli", "--set", "padding_free=true"], "padding_free applies to methods that train with the model's plain loss"),
    (["baseline_xnli", "--set", "padding_free=true", "--workers-per-trial", "2"], "padding_free runs one worker"),
    (["baseline_xnli", "--set", "padding_free=true", "--set", "torch_compile=true"], "cannot both be on"),
    (["baseline_xnli", "--set", "compile_bucket=0"], "compile_bucket must be > 0"),
])
def test_the_sweep_refuses_settings_that_cannot_run_in_one_line(capsys, args, expected):
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and expected in err, err


def test_a_model_that_is_not_bert_is_refused(no_dropout_model):
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    model = XLMRobertaForSequenceClassification(XLMRobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                                 num_attention_heads=2, intermediate_size=16))
    assert "BERT-type encoders" in padding_free.unsupported_model(model)
    assert padding_free.unsupported_model(load_classifier(no_dropout_model, 3, seed=1)) is None


@pytest.mark.parametrize("setting", [("--set", "padding_free=true"), ("--space", "padding_free=choice(True,False)")])
def test_a_model_folder_that_is_not_bert_is_refused_before_any_trial(capsys, tmp_path, monkeypatch, setting):
    """Set or searched: the sweep reads the folder's model type at its edge (here its dry run), not in a trial."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["baseline_xnli", "--profile", "smoke", "--model", str(model), *setting, "--dry-run"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert f"model {model}: padding_free supports BERT-type encoders (bert), not model type 'xlm-roberta'" in err
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert main(["baseline_xnli", "--profile", "smoke", "--model", str(model), *setting, "--dry-run"]) == 0
