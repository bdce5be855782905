"""SALT: self-augmentation by MLM code-switching and embedding mixup (Wang et al. 2023).

The recipe, top to bottom:

1. Offline, once per sweep (``orchestrator.preparation`` -> ``trainables.methods.salt.scan``): the MLM reads
   every English training sentence unmasked and proposes, per position and per language, the best
   whole-word token of that language's vocabulary. The trial receives the cache's path.
2. Code-switching (``train_dataset``): each language's threshold turns the candidates into one
   copy of every training example per language (English synonyms + the target languages); the
   training set is these copies (``keep_original`` adds the originals); labels are unchanged.
   A target language's candidate is the best token of its vocabulary, and where that is the
   original word the copy keeps it (``candidate_rule``).
3. Embedding mixup (``build_model`` / ``training_loss``): at every step, each substituted token's
   embedding is r ⊙ h_original + (1 - r) ⊙ h_substituted with r ~ U[0, 1] per dimension.
4. Everything else (optimiser, selection on English dev, test on every language) is the shared
   loop's, exactly as for the baseline.

Knobs (``--set`` / ``--space``): ``threshold_en``, ``threshold_target`` (the paper's one threshold
for every target language), ``threshold_<lang>`` (a language's own threshold, the search's
default), ``en_only`` and ``mixup`` (Table 3's ablations), ``mixup_scope``, ``keep_original``,
``candidate_rule``, ``pick``. Training settings: SALT's recipe (``trainables.recipes``: Robust-XLT's
scripts). Choices and reasons: docs/methods.md.
"""

from __future__ import annotations

import dataclasses

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from datasets import Dataset, DatasetDict

from trainables.config import ConfigError
from trainables.method_base import Method, run_samples
from trainables.methods.salt.codeswitch import (CANDIDATE_RULES, PICKS, SOURCE_IDS, code_switched_copies,
                                                load_candidates)
from trainables.methods.salt.mixup import SCOPES, EmbeddingMixup

LANGUAGE_THRESHOLD = re.compile(r"threshold_(?!en$|target$)([a-z]{2,3})")


@dataclass(frozen=True)
class Inputs:
    """Filled in by the sweep's scan (``Preparation.method_params``), not settings."""

    candidates_path: str = ""  # the scan cache
    languages: tuple[str, ...] = ()  # the target languages scanned


@dataclass(frozen=True)
class Params:
    threshold_en: float = 1e-3  # Appendix A: English synonyms
    threshold_target: float = 1e-7  # Appendix A: every target language (unless it has its own)
    language_thresholds: dict[str, float] = field(default_factory=dict)  # from threshold_<lang> knobs
    en_only: bool = False  # Table 3 "en-only": English synonyms only
    mixup: bool = True  # Table 3 "w/o mixup" turns it off
    mixup_scope: str = "instance"  # one r per example (the paper) or per token
    # Train on the copies only (Robust-XLT's perturb.py writes only the perturbed copies); True adds the originals.
    keep_original: bool = False
    # Target languages: "paper" = the best token of the language, no substitution when it is the original word;
    # "exclude-original" = the best token other than the original (English synonyms always exclude it).
    candidate_rule: str = "paper"
    pick: str = "best"  # the best candidate (the paper) or a uniform draw among those passing

    def thresholds(self, languages: tuple[str, ...]) -> dict[str, float]:
        """Language -> threshold of every copy this run trains on (``languages``: the scanned targets)."""
        targets = {} if self.en_only else {lang: self.language_thresholds.get(lang, self.threshold_target)
                                            for lang in languages}
        return {"en": self.threshold_en, **targets}


class Salt(Method):
    name = "salt"
    Params = Params
    Inputs = Inputs
    training_recipe: ClassVar[str] = "salt"  # Robust-XLT's scripts (trainables.recipes.PAPER_RECIPES)
    extra_batch_columns: ClassVar[tuple[str, ...]] = (SOURCE_IDS,)

    @classmethod
    def parse_params(cls, values: dict[str, Any]) -> Params:
        values = dict(values)
        own = dict(values.pop("language_thresholds", None) or {})
        for key in [k for k in values if LANGUAGE_THRESHOLD.fullmatch(k)]:
            own[LANGUAGE_THRESHOLD.fullmatch(key).group(1)] = values.pop(key)
        params = super().parse_params({**values, "language_thresholds": own})
        for name, value in [("threshold_en", params.threshold_en), ("threshold_target", params.threshold_target),
                            *((f"threshold_{k}", v) for k, v in own.items())]:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
                raise ConfigError(f"{name} must be a probability in (0, 1], got {value!r}")
        if params.mixup_scope not in SCOPES:
            raise ConfigError(f"mixup_scope must be one of {', '.join(SCOPES)}, got {params.mixup_scope!r}")
        if params.pick not in PICKS:
            raise ConfigError(f"pick must be one of {', '.join(PICKS)}, got {params.pick!r}")
        if params.candidate_rule not in CANDIDATE_RULES:
            raise ConfigError(f"candidate_rule must be one of {', '.join(CANDIDATE_RULES)}, "
                              f"got {params.candidate_rule!r}")
        if not isinstance(params.keep_original, bool):
            raise ConfigError(f"keep_original must be true or false, got {params.keep_original!r}")
        return params

    @classmethod
    def parse_inputs(cls, values: dict[str, Any]) -> Inputs:
        inputs = super().parse_inputs(values)
        return dataclasses.replace(inputs, languages=tuple(inputs.languages))

    @classmethod
    def accepts(cls, key: str) -> bool:
        return (key in cls.param_names() and key != "language_thresholds") or bool(LANGUAGE_THRESHOLD.fullmatch(key))

    @classmethod
    def effective_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        params, inputs = cls.parse(values)
        out = super().effective_values(values)
        out.pop("language_thresholds")
        out.update({f"threshold_{lang}": params.language_thresholds.get(lang, params.threshold_target)
                    for lang in inputs.languages})
        return out

    @classmethod
    def training_sequences(cls, cfg, rows: int) -> float:
        """One code-switched copy of every row per scanned language (English synonyms + the targets), and the
        originals with ``keep_original``. Before the scan chose them (the dry run): English + the rule's count."""
        from trainables.methods.salt.scan import ScanSettings

        params, inputs = cls.parse(cfg.method_params)
        copies = len(inputs.languages) or 1 + ScanSettings().num_languages
        return run_samples(cfg, rows * (copies + params.keep_original))

    # -- 1-2: the code-switched training set ----------------------------------------------------
    def train_dataset(self, data: DatasetDict) -> Dataset:
        if not self.inputs.candidates_path:
            raise ConfigError("SALT needs the candidate scan (candidates_path); run it through orchestrator.sweep")
        english = super().train_dataset(data)
        dataset, self.sub_rates = code_switched_copies(
            english, load_candidates(self.inputs.candidates_path), self.params.thresholds(self.inputs.languages),
            keep_original=self.params.keep_original, candidate_rule=self.params.candidate_rule, pick=self.params.pick,
            seed=self.cfg.seed)
        return dataset

    # -- 3: embedding mixup -----------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        model = super().build_model()
        self.mixer = EmbeddingMixup(model.get_input_embeddings(), scope=self.params.mixup_scope) if self.params.mixup else None
        return model

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        source = batch.pop(SOURCE_IDS)
        if self.mixer is None:
            return model(**batch).loss
        with self.mixer.mixing(source):
            return model(**batch).loss

    def run_metrics(self) -> dict[str, float]:
        return {f"salt_sub_rate_{lang}": rate for lang, rate in getattr(self, "sub_rates", {}).items()}
