"""X-Mixup's model and recipe: the two-stream encoder against the wrapped Hugging Face model, the
loss and inference against hand-computed values, and training through the shared loop."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer

from orchestrator.experiments import get_experiment
from trainables.loop import train_and_evaluate
from trainables.methods.xmixup.method import XMixup, average_probabilities, consistency_loss
from trainables.models import load_classifier
from trainables.paired import SideInputs, side_inputs
from trainables.tasks import get_task
from trainables.methods.xmixup.model import MixupOutput, XMixupModel, cross_attention
from trainables.methods.xmixup.ratio import MixupRatio


@pytest.fixture(scope="module")
def tokenizer(smoke_model):
    return AutoTokenizer.from_pretrained(smoke_model)


def _pair(tokenizer, first, second) -> SideInputs:
    enc = tokenizer(first, second, padding=True, return_tensors="pt")
    return SideInputs(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])


def _sides(tokenizer):
    target = _pair(tokenizer, ["the cat sat on the mat", "a b"], ["it sat", "c d e f g h"])
    source = _pair(tokenizer, ["the cat", "a b c d e f g h i"], ["it sat on it", "c"])
    return target, source


def test_cross_attention_uses_the_layer_s_own_self_attention(smoke_model, tokenizer):
    classifier = load_classifier(smoke_model, 3, seed=1).eval()
    model = XMixupModel(classifier, mixup_layer=1, max_ratio=0.5).eval()
    target, _ = _sides(tokenizer)
    layer = model.layers[0]
    # The only parameters X-Mixup adds are W and b: query/key/value/W_O are the layer's tensors.
    added = {id(p) for p in model.parameters()} - {id(p) for p in classifier.parameters()}
    assert added == {id(model.ratio.weight), id(model.ratio.bias)}
    constant = XMixupModel(load_classifier(smoke_model, 3, seed=1), mixup_layer=1, max_ratio=0.5, ratio="constant")
    assert sum(p.numel() for p in constant.parameters()) == sum(p.numel() for p in constant.classifier.parameters())
    # With key/value = query side, it is exactly the module's own self-attention.
    with torch.no_grad():
        hidden = model._embed(target)
        mine, scores = cross_attention(layer.attention.self, hidden, hidden, target.attention_mask)
        theirs = layer.attention.self(hidden, model._mask(hidden, target))[0]
    real = target.attention_mask.bool()
    torch.testing.assert_close(mine[real], theirs[real], rtol=1e-5, atol=1e-6)
    heads = classifier.config.num_attention_heads
    assert scores.shape == (2, heads, hidden.shape[1], hidden.shape[1])


def test_without_a_source_it_is_the_plain_classifier_and_the_source_stream_is_unmixed(smoke_model, tokenizer):
    classifier = load_classifier(smoke_model, 3, seed=1).eval()
    model = XMixupModel(classifier, mixup_layer=2, max_ratio=0.5).eval()
    target, source = _sides(tokenizer)
    with torch.no_grad():
        plain = classifier(input_ids=target.input_ids, attention_mask=target.attention_mask,
                           token_type_ids=target.token_type_ids).logits
        torch.testing.assert_close(model(target).target_logits, plain)
        out = model(target, source)
        alone = classifier(input_ids=source.input_ids, attention_mask=source.attention_mask,
                           token_type_ids=source.token_type_ids).logits
    torch.testing.assert_close(out.source_logits, alone)  # the source is never mixed
    assert not torch.allclose(out.target_logits, plain)  # the target is
    assert out.ratio.shape == (2,) and bool(((out.ratio > 0) & (out.ratio < 0.5)).all())


def test_mixing_is_the_layer_norm_of_the_interpolation(smoke_model, tokenizer):
    """h~_T = LN(λ h_T|S + (1 - λ) h_T): with λ0 = 1 and a constant ratio the target keeps only h_T|S."""
    torch.manual_seed(0)
    model = XMixupModel(load_classifier(smoke_model, 3, seed=1), mixup_layer=1, max_ratio=1.0, ratio="constant").eval()
    target, source = _sides(tokenizer)
    layer = model.layers[0]
    with torch.no_grad():
        h_t, h_s = model._embed(target), model._embed(source)
        mixed, _, ratio = model._mix_layer(layer, h_t, target, h_s, source)
        a_t = layer.attention(h_t, model._mask(h_t, target))[0]
        a_s = layer.attention(h_s, model._mask(h_s, source))[0]
        context, _ = cross_attention(layer.attention.self, a_t, a_s, source.attention_mask)
        expected = layer.feed_forward_chunk(layer.attention.output.LayerNorm(layer.attention.output.dense(context)))
    assert torch.equal(ratio, torch.ones(2))
    torch.testing.assert_close(mixed, expected)


@pytest.mark.parametrize("freeze", [False, True])
def test_w_and_b_get_gradients_unless_frozen(smoke_model, tokenizer, freeze):
    model = XMixupModel(load_classifier(smoke_model, 3, seed=1), mixup_layer=1, max_ratio=0.5, freeze_ratio=freeze)
    target, source = _sides(tokenizer)
    out = model(target, source)
    torch.nn.functional.cross_entropy(out.target_logits, torch.tensor([0, 2])).backward()
    if freeze:
        assert model.ratio.weight.grad is None and model.ratio.bias.grad is None
        assert not model.ratio.weight.requires_grad and float(model.ratio.weight) == 1.0
    else:
        assert float(model.ratio.weight.grad.abs()) > 0 and float(model.ratio.bias.grad.abs()) > 0


def test_ratio_over_heads_is_the_mean_head_entropy():
    """Two heads over one query and two keys: uniform (entropy ln 2) and one-hot-ish (entropy ~0)."""
    scores = torch.tensor([[[[0.0, 0.0]], [[50.0, 0.0]]]])  # [B=1, heads=2, I=1, J=2]
    ratio = MixupRatio(0.5)
    lam = ratio(scores, torch.ones(1, 1), torch.ones(1, 2))
    # H(A) = mean over heads (ln 2 + 0) / 2; H(Aᵀ): each key row has one query: entropy 0.
    expected = 0.5 / (1 + math.exp(-(math.log(2) / 2)))
    assert float(lam.detach()) == pytest.approx(expected, abs=1e-6)


def test_inference_averages_probabilities_or_raw_logits():
    source, target = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 4.0]])
    p_s = [math.exp(2) / (math.exp(2) + 2), 1 / (math.exp(2) + 2), 1 / (math.exp(2) + 2)]
    p_t = [1 / (math.exp(4) + 2), 1 / (math.exp(4) + 2), math.exp(4) / (math.exp(4) + 2)]
    expected = [(a + b) / 2 for a, b in zip(p_s, p_t)]
    torch.testing.assert_close(average_probabilities(source, target)[0], torch.tensor(expected))

    class Fixed(torch.nn.Module):  # a model whose two sides predict the logits above
        def forward(self, target_side, source_side=None, *, mix=True):
            return MixupOutput(target, torch.zeros(1, 2), source, torch.zeros(1, 2))

    batch = {"input_ids": torch.ones(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3, dtype=torch.long),
             "source_input_ids": torch.ones(1, 3, dtype=torch.long),
             "source_attention_mask": torch.ones(1, 3, dtype=torch.long)}
    cfg = _cfg()
    averaged = XMixup(cfg.replace(inference="probabilities"), get_task("xnli")).logits(Fixed(), batch)
    torch.testing.assert_close(averaged.exp()[0], torch.tensor(expected))
    raw = XMixup(cfg.replace(inference="logits"), get_task("xnli")).logits(Fixed(), batch)
    torch.testing.assert_close(raw, torch.tensor([[1.0, 0.0, 2.0]]))
    target_only = XMixup(cfg.replace(mixup_inference=False), get_task("xnli")).logits(Fixed(), batch)
    torch.testing.assert_close(target_only, target)


def test_consistency_loss_is_mse_plus_kl_of_source_to_target():
    out = MixupOutput(target_logits=torch.tensor([[0.0, 0.0]]), target_repr=torch.tensor([[1.0, 3.0]]),
                      source_logits=torch.tensor([[math.log(3.0), 0.0]]), source_repr=torch.tensor([[0.0, 1.0]]))
    mse = (1 + 4) / 2
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(p_S || p_T), p_S = (3/4, 1/4)
    assert float(consistency_loss(out)) == pytest.approx(mse + kl, rel=1e-6)


def test_scheduled_sampling_per_step_and_the_reference_per_epoch():
    method = XMixup(_cfg(pk=10.0), get_task("xnli"))
    method.steps_per_epoch = 20
    for step in (0, 7, 25, 60):
        method.step = step
        assert method.real_source_probability() == pytest.approx(10 / (10 + math.exp(step / 10)))
    reference = XMixup(_cfg(pk=10.0, sampling="reference"), get_task("xnli"))
    reference.steps_per_epoch = 20
    reference.step = 19
    assert reference.real_source_probability() == 1.0  # the gold source all through epoch 1
    reference.step = 25
    assert reference.real_source_probability() == pytest.approx(10 / (10 + math.exp(20 / 10)))
    off = XMixup(_cfg(pk=10.0, scheduled_sampling=False), get_task("xnli"))
    off.step = 1000
    assert off.real_source_probability() == 1.0


def test_training_source_mixes_real_and_back_translated_rows_per_example():
    method = XMixup(_cfg(pk=2.0), get_task("xnli"))
    method.pad_id = 0
    method.step = 40  # p* = 2 / (2 + e^20): back-translations only
    batch = {"source_input_ids": torch.tensor([[1, 2, 0], [3, 4, 5]]),
             "source_attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
             "backtrans_input_ids": torch.tensor([[7, 8, 9, 6], [9, 0, 0, 0]]),
             "backtrans_attention_mask": torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])}
    chosen, real = method._training_source(batch)
    assert not bool(real.any())
    assert chosen.input_ids.tolist() == [[7, 8, 9, 6], [9, 0, 0, 0]]
    coins = torch.tensor([True, False])
    mixed = side_inputs(batch, "source_").choose(coins, side_inputs(batch, "backtrans_"))
    assert mixed.input_ids.tolist() == [[1, 2, 0, 0], [9, 0, 0, 0]]
    assert mixed.attention_mask.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]


def _cfg(**params):
    from trainables.config import TrainConfig

    return TrainConfig(task="xnli", method="xmixup", method_params=params)


@pytest.fixture(scope="module")
def xnli_parallel(smoke_root, smoke_model):
    from trainables.data import load_raw
    from smoke import build_smoke_data
    from trainables.methods.xmixup.parallel_cache import parallel_cached
    from trainables.methods.xmixup.translations import load_parallel, resolve_translations

    task = get_task("xnli")
    raw = load_raw(task, str(build_smoke_data(task, smoke_root)))
    root = resolve_translations(None, task, smoke_root, smoke=True)
    pairs = load_parallel(task, raw, root, ("de", "ar"))
    return str(parallel_cached(pairs, task, smoke_model, 64, smoke_root / "cache"))


# The experiment's X-Mixup arms (Table 5 ablations, switches from the registry) and the reference code's flags.
# Arms that only drop a loss term (Table 9) or train fewer languages (Table 6) are checked, faster, in
# tests/test_xmixup_ablations.py.
ELSEWHERE = {"consistency_mse", "consistency_kl", "train_languages"}
XMIXUP_ARMS = {arm.name: arm.overrides for arm in get_experiment("xmixup_xnli").arms
               if arm.method == "xmixup" and not ELSEWHERE & set(arm.overrides)}
REFERENCE = {"freeze_ratio": True, "sampling": "reference", "inference": "logits"}


@pytest.mark.parametrize("overrides", [*XMIXUP_ARMS.values(), REFERENCE], ids=[*XMIXUP_ARMS, "reference_code"])
def test_xmixup_trains_through_the_shared_loop(smoke_train_config, xnli_parallel, overrides):
    """Every arm's switches do what the arm says (the e2e sweep runs only the main arm of them)."""
    cfg = smoke_train_config.replace(method="xmixup", max_steps=30, eval_every_steps=15, cka_path=xnli_parallel,
                                     parallel_path=xnli_parallel, pk=10.0, train_languages=("de",), **overrides)
    reports = []
    final = train_and_evaluate(cfg, reports.append)
    assert final["step"] == 30 and math.isfinite(final["dev_acc"])
    languages = get_task("xnli").languages
    assert all(0 <= final[f"test_acc_{lang}"] <= 1 for lang in languages)
    assert final["cka_en"] > 0.99  # English is its own translation (only the mixing tells the sides apart)
    assert all(0 < final[f"cka_{lang}"] <= 1 for lang in languages)
    reference = overrides is REFERENCE
    # p* was evaluated at the last step (29): per step k / (k + e^(29/k)); the reference: epoch 1 -> 1.
    expected = 1.0 if reference else 10 / (10 + math.exp(29 / 10))
    if overrides.get("scheduled_sampling", True):
        assert final["xmixup_final_real_source_probability"] == pytest.approx(expected)
    lambda0 = XMixup.parse_params(cfg.method_params).lambda0
    if not overrides.get("mixup", True):  # Table 5 w/o mixup: nothing mixed, λ = 0
        assert final["xmixup_ratio_mean"] == 0.0
    elif overrides.get("ratio") == "constant":  # λ = λ0 on every example
        assert final["xmixup_ratio_mean"] == pytest.approx(lambda0)
    else:  # λ0 scaled down by the translation-quality term
        assert 0 < final["xmixup_ratio_mean"] < lambda0
    # The real English source always without scheduled sampling, and at 30 steps under the reference schedule.
    if reference or not overrides.get("scheduled_sampling", True):
        assert final["xmixup_real_source_share"] == 1.0
    else:
        assert final["xmixup_real_source_share"] < 1.0


def test_translate_train_adds_the_translations_to_english(smoke_train_config, xnli_parallel):
    from trainables.data import load_tokenized
    from trainables.methods.translate_train.method import TranslateTrain

    cfg = smoke_train_config.replace(method="translate_train", parallel_path=xnli_parallel, train_languages="de")
    method = TranslateTrain(cfg, get_task("xnli"))
    train = method.train_dataset(load_tokenized(cfg.tokenized_path))
    english = load_tokenized(cfg.tokenized_path)["train_en"]
    assert len(train) == 2 * len(english)
    final = train_and_evaluate(cfg.replace(max_steps=10, eval_every_steps=10, cka_path=xnli_parallel), lambda m: None)
    assert final["cka_en"] == pytest.approx(1.0) and 0 < final["cka_de"] <= 1


def test_xlm_r_encoders_are_wrapped_too():
    """A tiny random XLM-R (no pooler, its own classification head, position ids from the padding)."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                              intermediate_size=64, max_position_embeddings=40, num_labels=3, pad_token_id=1)
    classifier = XLMRobertaForSequenceClassification(config).eval()
    model = XMixupModel(classifier, mixup_layer=3, max_ratio=0.5).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]])
    target = SideInputs(ids, (ids != 1).long())
    source = SideInputs(ids[:, :4], (ids[:, :4] != 1).long())
    with torch.no_grad():
        torch.testing.assert_close(model(target).target_logits,
                                   classifier(input_ids=ids, attention_mask=target.attention_mask).logits)
        out = model(target, source)
    assert out.target_logits.shape == (2, 3) and out.source_repr.shape == (2, 32)
    with pytest.raises(Exception, match="mixup_layer must be in 1..3"):
        XMixupModel(classifier, mixup_layer=4, max_ratio=0.5)


def test_a_resumed_xmixup_run_keeps_its_running_statistics(smoke_train_config, xnli_parallel, tmp_path):
    """Killed after its step-20 checkpoint, an X-Mixup run goes on with the λ and real-source sums of its
    first 20 steps (the method's state is in the checkpoint): its final statistics are the uninterrupted run's."""
    from tests.test_loop import Killed, _run_in

    cfg = smoke_train_config.replace(method="xmixup", max_steps=30, eval_every_steps=10, checkpoint_every_s=0.0,
                                     cka_path=xnli_parallel, parallel_path=xnli_parallel, pk=10.0,
                                     train_languages=("de",))
    reference, _ = _run_in(tmp_path / "whole", cfg)
    with pytest.raises(Killed):
        _run_in(tmp_path / "killed", cfg, kill_after_step=20)
    resumed, _ = _run_in(tmp_path / "killed", cfg)
    assert resumed["resumed_from_step"] == 20
    statistics = ("xmixup_ratio_mean", "xmixup_real_source_share", "xmixup_final_real_source_probability")
    assert {k: resumed[k] for k in statistics} == {k: reference[k] for k in statistics}
    assert resumed["dev_acc"] == reference["dev_acc"] and resumed["test_acc_avg"] == reference["test_acc_avg"]
