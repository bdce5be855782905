"""X-Mixup's ablation arms of Tables 5, 6 and 9, each arm's switches taken from the registry and checked
in-process: w/o mixup (no mix in training or inference), w/o MSE / w/o KL (that term really absent from
the loss), the seen-languages arm (what it trains on, and what the sweep prepares for it); and the model
selection each experiment defaults to."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from orchestrator import cli
from orchestrator.experiments import XNLI_SEEN_LANGUAGES, get_experiment
from orchestrator.plan import legend_notes
from trainables.config import TrainConfig
from trainables.methods.xmixup.method import XMixup, consistency_loss
from trainables.methods.xmixup.model import MixupOutput, XMixupModel
from trainables.models import load_classifier
from trainables.paired import SideInputs
from trainables.tasks import get_task

ARMS = {arm.name: dict(arm.overrides) for arm in get_experiment("xmixup_xnli").arms}


def _method(**params) -> XMixup:
    method = XMixup(TrainConfig(task="xnli", method="xmixup", method_params=params), get_task("xnli"))
    method.pad_id = 0
    return method


# Fixed sides: p_S = softmax(ln 3, 0) = (3/4, 1/4), p_T = (1/2, 1/2); r_S = (0, 1), r_T = (1, 3); label 0.
MSE = (1 + 4) / 2
KL = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(p_S || p_T)
TASK = 0.4 * -math.log(0.75) + 0.6 * -math.log(0.5)  # α CE_S + (1 - α) CE_T, α = 0.4


class Fixed(torch.nn.Module):
    """Two sides with the outputs above whatever the input; records whether it was asked to mix."""

    def forward(self, target, source=None, *, mix=True):
        self.mix = mix
        return MixupOutput(target_logits=torch.tensor([[0.0, 0.0]]), target_repr=torch.tensor([[1.0, 3.0]]),
                           source_logits=torch.tensor([[math.log(3.0), 0.0]]), source_repr=torch.tensor([[0.0, 1.0]]),
                           ratio=torch.tensor([0.3]))


def _batch(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {**{f"{side}{name}": value for side in ("", "source_", "backtrans_")
               for name, value in (("input_ids", ids), ("attention_mask", mask))}, "labels": labels}


def test_consistency_terms_switch_off_one_by_one():
    out = Fixed()(None)
    assert float(consistency_loss(out)) == pytest.approx(MSE + KL, rel=1e-6)
    assert float(consistency_loss(out, mse=False)) == pytest.approx(KL, rel=1e-6)
    assert float(consistency_loss(out, kl=False)) == pytest.approx(MSE, rel=1e-6)
    assert float(consistency_loss(out, mse=False, kl=False)) == 0.0


@pytest.mark.parametrize("arm, terms", [("xmixup", MSE + KL), ("xmixup_no_mse", KL), ("xmixup_no_kl", MSE),
                                        ("xmixup_no_consistency", 0.0)])
def test_each_arm_s_loss_has_exactly_its_terms(arm, terms):
    method = _method(**ARMS[arm])
    ones = torch.ones(1, 3, dtype=torch.long)
    loss = method.training_loss(Fixed(), _batch(ones, ones, torch.tensor([0])))
    assert float(loss) == pytest.approx(TASK + terms, rel=1e-6)


@pytest.fixture(scope="module")
def sides(smoke_model):
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)

    def pair(first, second) -> SideInputs:
        enc = tokenizer(first, second, padding=True, return_tensors="pt")
        return SideInputs(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])

    return (pair(["the cat sat on the mat", "a b"], ["it sat", "c d e f g h"]),
            pair(["the cat", "a b c d e f g h i"], ["it sat on it", "c"]))


def _alone(classifier, side: SideInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain classifier's logits and mean-pooled last layer on one side."""
    out = classifier(input_ids=side.input_ids, attention_mask=side.attention_mask, token_type_ids=side.token_type_ids,
                     output_hidden_states=True)
    mask = side.attention_mask.unsqueeze(-1).float()
    return out.logits, (out.hidden_states[-1] * mask).sum(1) / mask.sum(1)


def test_without_the_mix_each_side_is_the_plain_classifier(smoke_model, sides):
    target, source = sides
    classifier = load_classifier(smoke_model, 3, seed=1).eval()
    model = XMixupModel(classifier, mixup_layer=1, max_ratio=0.5).eval()
    with torch.no_grad():
        out = model(target, source, mix=False)
        mixed = model(target, source)
        (logits_t, repr_t), (logits_s, repr_s) = _alone(classifier, target), _alone(classifier, source)
    torch.testing.assert_close(out.target_logits, logits_t)
    torch.testing.assert_close(out.source_logits, logits_s)
    torch.testing.assert_close(out.target_repr, repr_t)
    torch.testing.assert_close(out.source_repr, repr_s)
    assert out.ratio.tolist() == [0.0, 0.0]  # nothing mixed
    assert not torch.allclose(mixed.target_logits, logits_t)  # the mix does change the target


def test_no_mixup_arm_trains_and_predicts_without_the_mix(smoke_train_config, sides):
    """Table 5 w/o mixup: X-Mixup's loss (both sides' task loss, MSE, KL) on the two sides each encoded
    alone, no λ parameters, and the target alone at inference."""
    target, source = sides
    cfg = smoke_train_config.replace(method="xmixup", **ARMS["xmixup_no_mixup"])
    method = XMixup(cfg, get_task("xnli"))
    model = method.build_model().eval()
    assert model.ratio is None  # W and b would get no gradient without the mix
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in model.classifier.parameters())
    labels = torch.tensor([0, 2])
    width = max(target.input_ids.shape[1], source.input_ids.shape[1])
    pad = lambda x: F.pad(x, (0, width - x.shape[1]))  # noqa: E731
    batch = {"input_ids": target.input_ids, "attention_mask": target.attention_mask,
             "token_type_ids": target.token_type_ids, "labels": labels}
    for side in ("source_", "backtrans_"):  # the back-translation equals the source: the coin does not matter
        batch.update({f"{side}input_ids": pad(source.input_ids), f"{side}attention_mask": pad(source.attention_mask),
                      f"{side}token_type_ids": pad(source.token_type_ids)})
    with torch.no_grad():
        loss = method.training_loss(model, batch)
        (logits_t, repr_t), (logits_s, repr_s) = _alone(model.classifier, target), _alone(model.classifier, source)
        predicted = method.logits(model, batch)
    p = method.params
    expected = (p.alpha * F.cross_entropy(logits_s, labels) + (1 - p.alpha) * F.cross_entropy(logits_t, labels)
                + F.mse_loss(repr_s, repr_t)
                + (F.softmax(logits_s, -1) * (F.log_softmax(logits_s, -1) - F.log_softmax(logits_t, -1))).sum(-1).mean())
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    torch.testing.assert_close(predicted, logits_t)  # the target alone, no translate-test source
    assert method.run_metrics()["xmixup_ratio_mean"] == 0.0
    # mixup=False alone (the reference code's start_layer == end_layer) keeps the translate-test source at
    # inference: the mean of the two sides' distributions, each side encoded alone.
    ensemble = XMixup(cfg.replace(mixup_inference=True), get_task("xnli"))
    with torch.no_grad():
        averaged = ensemble.logits(model, batch).exp()
    torch.testing.assert_close(averaged, (F.softmax(logits_t, -1) + F.softmax(logits_s, -1)) / 2)


def test_the_seen_arm_trains_the_seen_languages_and_the_sweep_prepares_them():
    from orchestrator.preparation import experiment_steps, step_context

    assert XMixup.parse_params(ARMS["xmixup_seen"]).train_languages == XNLI_SEEN_LANGUAGES
    task = get_task("xnli")

    def prepared(*argv: str) -> tuple[str, ...]:
        cfg = cli.parse(["xmixup_xnli", "--profile", "smoke", *argv])
        experiment = get_experiment("xmixup_xnli", cfg.arms)
        step = next(step for step in experiment_steps(experiment) if step.key == "xmixup")
        return step_context(cfg, experiment, task, step).target_languages()

    # The smoke profile's de, fr for every arm, plus the seen arm's own, in the task's order.
    assert prepared() == ("bg", "de", "el", "fr", "ru", "th", "ur", "zh")
    assert prepared("--arms", "baseline,xmixup") == ("de", "fr")  # the seen arm not confirmed: not prepared


@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_selection_defaults_to_each_experiment_s_paper_protocol(profile):
    def select_on(*argv: str) -> str:
        return cli.parse([*argv, "--profile", profile]).select_on

    assert select_on("xmixup_xnli") == select_on("xmixup_pawsx") == "multilingual-dev"  # X-Mixup section 5.1
    assert select_on("baseline_xnli") == select_on("salt_xnli") == select_on("btf_marc") == "en-dev"
    assert select_on("xmixup_xnli", "--select-on", "en-dev") == "en-dev"  # English dev stays a flag
    assert select_on("baseline_xnli", "--select-on", "multilingual-dev") == "multilingual-dev"


def test_the_legend_says_which_selection_the_sweep_used():
    experiment = get_experiment("xmixup_xnli")
    paper = legend_notes(cli.parse(["xmixup_xnli"]), experiment, searched=True)
    assert paper[-1] == ("model selection: every run keeps its checkpoint with the best dev score averaged over all "
                         "languages' dev sets (multilingual-dev: the experiment's paper protocol)")
    english = legend_notes(cli.parse(["xmixup_xnli", "--select-on", "en-dev"]), experiment, searched=False)
    assert english[-1] == ("model selection: every run keeps its checkpoint with the best English dev (strict "
                           "zero-shot) (en-dev: --select-on; the experiment's paper protocol is multilingual-dev)")
