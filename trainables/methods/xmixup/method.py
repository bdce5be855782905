"""X-Mixup: cross-lingual manifold mixup (Yang et al., ICLR 2022).

The recipe, top to bottom:

1. Data (``train_dataset`` / ``evaluation_data``): pairs prepared once per sweep
   (``orchestrator.preparation`` -> ``trainables.methods.xmixup.translations``). Training pairs an English
   example (x_S) with its translate-train translation (x_T, label carried over) and the English
   back-translation, and, as the reference code does, every English training example with itself
   (``english_pairs``): English dev and test are (en, en) pairs, so that input must be trained on.
   Dev/test pair the real target example with its translate-test English.
2. Model (``build_model``): the classifier wrapped by ``XMixupModel``: source and target encoded
   separately, mixed in layer ``mixup_layer`` by h~_T = LN(λ h_T|S + (1 - λ) h_T), with
   λ = λ0 σ((H(A) + H(Aᵀ)) W + b) from the cross-attention's entropy (``ratio="constant"``: λ = λ0).
3. Scheduled sampling (``_training_source``): each example feeds the real English with
   probability p* = k / (k + exp(step / k)) at optimizer step ``step``, else its back-translation.
4. Loss (``training_loss``): α CE_S + (1 - α) CE_T + MSE(r_S, r_T) + KL(p_S || p_T), r the
   mean-pooled last layer.
5. Inference (``logits``): the mixup forward with the translate-test English as source; the
   prediction averages the two sides' probability distributions.

Flags that reproduce the reference TensorFlow code: ``freeze_ratio`` (W, b never trained),
``sampling="reference"`` (p* fixed per epoch, one coin per batch), ``inference="logits"``
(raw logits averaged). Table 5's ablations: ``mixup=False`` with ``mixup_inference=False`` (w/o
mixup: the two streams never mix, and the target alone predicts; ``mixup=False`` alone keeps the
translate-test source at inference, each side encoded alone, as the reference code's
``start_layer == end_layer`` would), ``mixup_inference=False``,
``scheduled_sampling=False``, ``consistency=False``, ``ratio="constant"``; Table 9's:
``consistency_mse=False``, ``consistency_kl=False``. Choices and reasons: docs/methods.md.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from datasets import Dataset, DatasetDict, concatenate_datasets

from trainables.config import ConfigError
from trainables.data import load_tokenized
from trainables.method_base import Method, run_samples
from trainables.paired import (BACK, SIDE_COLUMNS, SOURCE, ParallelInputs, SideInputs, self_pairs, side_inputs,
                               translated_training_rows)
from trainables.methods.xmixup.model import MixupOutput, XMixupModel
from trainables.tasks import parse_languages
from trainables.methods.xmixup.schedule import per_epoch_probability, real_source_probability, use_real_source

RATIOS = ("entropy", "constant")
SAMPLINGS = ("per-step", "reference")
INFERENCES = ("probabilities", "logits")


@dataclass(frozen=True)
class Params:
    train_languages: tuple[str, ...] = ()  # the translations trained on; empty: every target language
    english_pairs: bool = True  # also train each English example paired with itself (the reference code)
    lambda0: float = 0.5  # λ0, the maximum mixup ratio (paper: 0.5)
    mixup_layer: int = 1  # 1-based encoder layer that mixes (paper, classification: 1)
    alpha: float = 0.4  # α: weight of the source-side task loss (Table 10, classification)
    pk: float = 1000.0  # k of the inverse-sigmoid decay (Table 10, classification)
    ratio: str = "entropy"  # λ from translation quality, or "constant" (λ = λ0, Table 5)
    freeze_ratio: bool = False  # the reference code: W = 1, b = 0, never trained
    scheduled_sampling: bool = True  # False: always the real English (Table 5)
    sampling: str = "per-step"  # "reference": p* fixed per epoch, one coin per batch
    consistency: bool = True  # False: no MSE / KL terms (Table 5)
    consistency_mse: bool = True  # False: no MSE(r_S, r_T) term (Table 9 w/o MSE)
    consistency_kl: bool = True  # False: no KL(p_S || p_T) term (Table 9 w/o KL)
    mixup: bool = True  # False: source and target never mix, each encoded alone (Table 5 w/o mixup, in training
    # and, with mixup_inference, at inference)
    mixup_inference: bool = True  # False: predict from the target alone (Table 5)
    inference: str = "probabilities"  # "logits": average raw logits (the reference code)


class XMixup(Method):
    name = "xmixup"
    Params = Params
    Inputs = ParallelInputs
    # Appendix C.1 and the reference scripts/train_classification.sh: lr 5e-6, 4 epochs, 16 x 4 GPUs = 64
    # (``trainables.recipes.PAPER_RECIPES``).
    training_recipe: ClassVar[str] = "xmixup"
    extra_batch_columns: ClassVar[tuple[str, ...]] = tuple(prefix + column for prefix in (SOURCE, BACK)
                                                           for column in SIDE_COLUMNS)

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Params:
        values = dict(values)
        values["train_languages"] = parse_languages(values.get("train_languages"))
        params = super().parse_params(values)
        checks = [(0 < params.lambda0 <= 1, f"lambda0 must be in (0, 1], got {params.lambda0!r}"),
                  (0 <= params.alpha <= 1, f"alpha must be in [0, 1], got {params.alpha!r}"),
                  (params.pk > 1, f"pk must be > 1 (p* starts at k / (k + 1)), got {params.pk!r}"),
                  (isinstance(params.mixup_layer, numbers.Integral) and params.mixup_layer >= 1,
                   f"mixup_layer must be a layer number >= 1, got {params.mixup_layer!r}"),
                  (params.ratio in RATIOS, f"ratio must be one of {', '.join(RATIOS)}, got {params.ratio!r}"),
                  (params.sampling in SAMPLINGS, f"sampling must be one of {', '.join(SAMPLINGS)}, got {params.sampling!r}"),
                  (params.inference in INFERENCES,
                   f"inference must be one of {', '.join(INFERENCES)}, got {params.inference!r}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return params

    def __init__(self, cfg, task):
        super().__init__(cfg, task)
        self._ratio_sum = self._real_sum = None
        self._batches = 0

    # -- 1: the paired data ---------------------------------------------------------------------
    @property
    def parallel(self) -> DatasetDict:
        if not self.inputs.parallel_path:
            raise ConfigError("X-Mixup needs the paired data (parallel_path); run it through orchestrator.sweep")
        if not hasattr(self, "_parallel"):
            self._parallel = load_tokenized(self.inputs.parallel_path)
        return self._parallel

    @classmethod
    def training_sequences(cls, cfg, rows: int) -> float:
        """Each training example is a pair (source and translation, two encoder passes): the translate-train rows of
        every trained language (about the English rows each) and, with ``english_pairs``, the English rows."""
        from trainables.tasks import get_task

        params = cls.parse_params(cfg.method_params)
        languages = len(params.train_languages or get_task(cfg.task).target_languages) + params.english_pairs
        return 2 * run_samples(cfg, rows * languages)

    def train_dataset(self, data: DatasetDict) -> Dataset:
        """The translate-train pairs, plus the English training set paired with itself (``english_pairs``).

        English dev and test are scored as (en, en) pairs (XTREME has no English translate-test); without
        (en, en) training pairs that input is one the model never trained on, and English-dev selection
        scores it (issue 21). The reference code trains English as one of its languages, with its own
        text as source and back-translation; so do we, from the task's English train split (all of it,
        also the examples a translation file lacks). ``english_pairs=False`` is the former behaviour.
        """
        translated = translated_training_rows(self.inputs.parallel_path, self.params.train_languages)
        if not self.params.english_pairs:
            return translated
        english = super().train_dataset(data)
        return concatenate_datasets([translated, self_pairs(english, translated.features, self.task.source_language)])

    def evaluation_data(self, data: DatasetDict) -> DatasetDict:
        return self.parallel

    @classmethod
    def scores_inputs_alone(cls, params: Params) -> bool:
        """Mixup inference reads each test example's English translation; without it the target alone decides."""
        return not params.mixup_inference

    # -- 2: the two-stream model ----------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        p = self.params
        classifier = super().build_model()
        self.pad_id = classifier.config.pad_token_id or 0
        # Without the mix, λ's W and b would get no gradient (DDP refuses unused parameters): leave them out.
        return XMixupModel(classifier, mixup_layer=p.mixup_layer, max_ratio=p.lambda0,
                           ratio=p.ratio if p.mixup else "constant", freeze_ratio=p.freeze_ratio)

    # -- 3: scheduled sampling ------------------------------------------------------------------
    def real_source_probability(self) -> float:
        p = self.params
        if not p.scheduled_sampling:
            return 1.0
        if p.sampling == "reference":
            return per_epoch_probability(self.step, p.pk, self.steps_per_epoch)
        return real_source_probability(self.step, p.pk)

    def _training_source(self, batch: dict[str, torch.Tensor]) -> tuple[SideInputs, torch.Tensor]:
        real = side_inputs(batch, SOURCE)
        size = real.input_ids.shape[0]
        if not self.params.scheduled_sampling:
            return real, torch.ones(size, dtype=torch.bool, device=real.input_ids.device)
        probability = self.real_source_probability()
        coins = use_real_source(1 if self.params.sampling == "reference" else size, probability).expand(size)
        coins = coins.to(real.input_ids.device)
        return real.choose(coins, side_inputs(batch, BACK), pad_id=self.pad_id), coins

    # -- 4: the loss ----------------------------------------------------------------------------
    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["labels"]
        source, real = self._training_source(batch)
        p = self.params
        out: MixupOutput = model(side_inputs(batch), source, mix=p.mixup)
        loss = p.alpha * F.cross_entropy(out.source_logits, labels) + (1 - p.alpha) * F.cross_entropy(out.target_logits, labels)
        if p.consistency and (p.consistency_mse or p.consistency_kl):
            loss = loss + consistency_loss(out, mse=p.consistency_mse, kl=p.consistency_kl)
        self._track(out.ratio.detach(), real)
        return loss

    def _track(self, ratio: torch.Tensor, real: torch.Tensor) -> None:
        """Running means of λ and of the real-source share (no host sync per step)."""
        ratio_mean, real_mean = ratio.float().mean(), real.float().mean()
        if self._ratio_sum is None:
            self._ratio_sum, self._real_sum = torch.zeros_like(ratio_mean), torch.zeros_like(real_mean)
        self._ratio_sum += ratio_mean
        self._real_sum += real_mean
        self._batches += 1

    def state_dict(self) -> dict:
        """The running sums as numbers (a resumed run adds its device tensors to them)."""
        as_number = lambda total: None if total is None else float(total)  # noqa: E731
        return {"ratio_sum": as_number(self._ratio_sum), "real_sum": as_number(self._real_sum), "batches": self._batches}

    def load_state_dict(self, state: dict) -> None:
        self._ratio_sum, self._real_sum, self._batches = state["ratio_sum"], state["real_sum"], state["batches"]

    def run_metrics(self) -> dict[str, float]:
        if not self._batches:
            return {}
        return {"xmixup_ratio_mean": float(self._ratio_sum) / self._batches,
                "xmixup_real_source_share": float(self._real_sum) / self._batches,
                "xmixup_final_real_source_probability": self.real_source_probability()}

    # -- 5: inference ---------------------------------------------------------------------------
    def logits(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target = side_inputs(batch)
        if not self.params.mixup_inference:
            return model(target).target_logits
        out = model(target, side_inputs(batch, SOURCE), mix=self.params.mixup)
        if self.params.inference == "logits":
            return (out.source_logits + out.target_logits) / 2
        return average_probabilities(out.source_logits, out.target_logits).log()

    def sentence_representations(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        """(r_S, r_T) as the arm predicts: from the mixup forward, or each side alone without mixup inference."""
        if not self.params.mixup_inference:
            return model(side_inputs(batch, SOURCE)).target_repr, model(side_inputs(batch)).target_repr
        out = model(side_inputs(batch), side_inputs(batch, SOURCE), mix=self.params.mixup)
        return out.source_repr, out.target_repr


def consistency_loss(out: MixupOutput, *, mse: bool = True, kl: bool = True) -> torch.Tensor:
    """MSE(r_S, r_T) + KL(p_S || p_T): representation and prediction consistency (Eq. 7); ``mse`` / ``kl``
    False leave that term out (Table 9)."""
    loss = out.target_logits.new_zeros((), dtype=torch.float32)
    if mse:
        loss = loss + F.mse_loss(out.source_repr.float(), out.target_repr.float())
    if kl:
        loss = loss + F.kl_div(F.log_softmax(out.target_logits.float(), -1),
                               F.log_softmax(out.source_logits.float(), -1), log_target=True, reduction="batchmean")
    return loss


def average_probabilities(*logits: torch.Tensor) -> torch.Tensor:
    """The mean of the sides' predicted distributions (the paper's inference for classification)."""
    return torch.stack([torch.softmax(x.float(), -1) for x in logits]).mean(0)
