"""X-Mixup's (and translate-train's) preparation step: the translations, paired and tokenised once.

``check`` finds the translations in seconds, before the model and data are fetched (``--dry-run``: a local
directory's, or the missing flag); ``prepare``
pairs and tokenises them (cached by content hash) and keeps the mixup layers the encoder has.
The ``--xmixup-*`` flags: where the translations come from, the layers searched, and the
reference code's behaviour (switches that fix knobs).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from trainables.method_spec import Preparation, PreparationError, PrepareContext, PrepareStep


@dataclass(frozen=True)
class TranslationSettings:
    """X-Mixup experiments: where the translations come from, and the mixup layers searched."""

    translations: str | None = None  # a local directory or hub dataset id; None: generated (smoke) or an error
    layers: tuple[int, ...] | None = None  # None: the paper's {1, 4, 8, 12} that the encoder has


# Flags that switch X-Mixup to the reference code's behaviour: flag -> the knob it fixes.
_REFERENCE_FLAGS = {"xmixup_freeze_ratio": ("freeze_ratio", True), "xmixup_reference_sampling": ("sampling", "reference"),
                    "xmixup_logit_inference": ("inference", "logits")}


def _layers(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"write layer numbers, e.g. 1,4,8,12, got {text!r}") from None
    if not layers or min(layers) < 1 or len(set(layers)) != len(layers):
        raise argparse.ArgumentTypeError(f"write distinct layer numbers >= 1 (1 = the first layer), got {text!r}")
    return layers


class Translations(PrepareStep):
    key = "xmixup"
    label = "X-Mixup"
    flag_prefix = "--xmixup-"
    settings_type = TranslationSettings

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        xmixup = parser.add_argument_group("X-Mixup (xmixup_* experiments)")
        xmixup.add_argument("--xmixup-translations", metavar="DIR_OR_HUB_ID",
                            help="XTREME's translate-train / translate-test files (and back-translations): a local "
                                 "directory or a hub dataset id (default: generated, smoke profile only)")
        xmixup.add_argument("--xmixup-layers", type=_layers,
                            help="mixup layers the search chooses from, e.g. 1,4 (default: the paper's 1,4,8,12 that "
                                 "the encoder has)")
        xmixup.add_argument("--xmixup-freeze-ratio", action="store_true",
                            help="the reference code's mixup ratio: W = 1, b = 0, never trained")
        xmixup.add_argument("--xmixup-reference-sampling", action="store_true",
                            help="the reference code's scheduled sampling: p* fixed per epoch (gold English all "
                                 "through epoch 1), one coin per batch")
        xmixup.add_argument("--xmixup-logit-inference", action="store_true",
                            help="average the two sides' raw logits at inference (the reference code), not probabilities")

    def settings_from_args(self, args: argparse.Namespace, profile_values: Mapping[str, Any]) -> TranslationSettings:
        return TranslationSettings(**{**profile_values, "translations": args.xmixup_translations,
                                      "layers": args.xmixup_layers})

    def fixed_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        return dict(value for flag, value in _REFERENCE_FLAGS.items() if getattr(args, flag))

    def shape_space(self, settings: TranslationSettings, space: dict[str, Any]) -> dict[str, Any]:
        from search_spaces.spec import Choice

        if settings.layers and "mixup_layer" in space:
            space["mixup_layer"] = Choice(settings.layers)
        return space

    def check(self, ctx: PrepareContext) -> None:
        from trainables.methods.xmixup.translations import TranslationsUnavailable, check_translations, resolve_translations

        spec = ctx.settings.translations
        fetched = spec is not None and not Path(spec).expanduser().is_dir()
        if ctx.dry_run and (fetched or (spec is None and ctx.generated_data)):
            return  # a hub dataset or generated (smoke): fetched or built, and checked, when the sweep starts
        dev_languages = ctx.task.target_languages if ctx.select_on == "multilingual-dev" else ()
        try:
            root = resolve_translations(ctx.settings.translations, ctx.task, ctx.cache_dir, smoke=ctx.generated_data)
            check_translations(ctx.task, root, ctx.target_languages(), dev_languages=dev_languages)
        except TranslationsUnavailable as exc:
            raise PreparationError(str(exc)) from None

    def describe(self, ctx: PrepareContext) -> tuple[list[str], dict[str, Any]]:
        from trainables.tasks import parse_languages

        fixed_values = ctx.fixed
        source = ctx.settings.translations or ("generated parallel data (smoke)" if ctx.generated_data
                                               else "none given: pass --xmixup-translations DIR or a hub dataset id")
        fixed = parse_languages(fixed_values.get("train_languages"))
        if fixed and any(parse_languages(arm.get("train_languages")) for arm in ctx.arm_fixed):
            try:  # with the languages an arm fixes for itself (Table 6's seen ones)
                fixed = ctx.target_languages()
            except PreparationError:  # an unknown language: shown as given, the sweep refuses it in one line
                pass
        languages = ", ".join(fixed) if fixed else f"all {len(ctx.task.target_languages)} target languages"
        reference = [flag for flag, on in (("λ frozen (W = 1, b = 0)", fixed_values.get("freeze_ratio")),
                                           ("p* per epoch, one coin per batch", fixed_values.get("sampling") == "reference"),
                                           ("raw-logit inference", fixed_values.get("inference") == "logits")) if on]
        lines = [
            f"translations {source}: translate-train ({languages}) with back-translations for scheduled sampling, "
            f"translate-test for every target language; tokenised once, cached by content hash under {ctx.cache_dir}",
            "x-mixup      mix in layer l with the layer's own attention; λ = λ0 σ((H(A) + H(Aᵀ)) W + b), W and b "
            "trained; p* = k / (k + exp(step / k)) per step and example; loss α CE_S + (1 - α) CE_T + MSE + KL; "
            "inference averages the two sides' probabilities"
            + (f"; reference-code behaviour: {', '.join(reference)}" if reference else ""),
            "cka          linear CKA of source (translate-test English) and target test representations "
            "(mean-pooled last layer), cka_<lang> for every arm (paper Table 7)",
        ]
        return lines, dict(ctx.space)

    def prepare(self, ctx: PrepareContext) -> Preparation:
        """Translations -> paired, tokenised data (cached), and the mixup layers the encoder really has."""
        from transformers import AutoConfig

        from search_spaces.spec import Choice
        from trainables.data import load_raw
        from trainables.methods.xmixup.parallel_cache import parallel_cached
        from trainables.methods.xmixup.translations import (TranslationsUnavailable, check_translations, load_parallel,
                                                            resolve_translations)

        task, settings = ctx.task, ctx.settings
        languages = ctx.target_languages()
        dev_languages = task.target_languages if ctx.select_on == "multilingual-dev" else ()
        depth = AutoConfig.from_pretrained(ctx.model_dir).num_hidden_layers
        space = dict(ctx.space)
        layers = space.get("mixup_layer")
        if isinstance(layers, Choice):
            deeper = [layer for layer in layers.values if layer > depth]
            if deeper and settings.layers:
                raise PreparationError(f"--xmixup-layers {','.join(map(str, deeper))}: the encoder has {depth} layers")
            kept = tuple(layer for layer in layers.values if layer <= depth) or (depth,)
            space["mixup_layer"] = Choice(kept)
        fixed_layer = ctx.fixed.get("mixup_layer")
        if isinstance(fixed_layer, int) and not 1 <= fixed_layer <= depth:
            raise PreparationError(f"mixup_layer={fixed_layer}: the encoder has layers 1..{depth}")
        try:
            root = resolve_translations(settings.translations, task, ctx.cache_dir, smoke=ctx.generated_data)
            check_translations(task, root, languages, dev_languages=dev_languages)
        except TranslationsUnavailable as exc:
            raise PreparationError(str(exc)) from None
        raw = load_raw(task, ctx.data_dir, eval_splits=("validation", "test"))
        try:
            pairs = load_parallel(task, raw, root, languages, dev_languages=dev_languages)
        except TranslationsUnavailable as exc:
            raise PreparationError(str(exc)) from None
        path = parallel_cached(pairs, task, ctx.model_dir, ctx.max_length, ctx.cache_dir)
        params = {"xmixup.translations": str(root), "xmixup.train_languages": ",".join(languages),
                  "xmixup.parallel_path": str(path), "xmixup.train_pairs": len(pairs["translate_train"]),
                  "xmixup.encoder_layers": depth}
        params.update({f"sweep.xmixup.{k}": v for k, v in ctx.settings_dict.items()})
        summary = (f"[xmixup] {len(pairs['translate_train'])} training pairs ({', '.join(languages)}) from {root}; "
                   f"mixup layers {space['mixup_layer'] if 'mixup_layer' in space else fixed_layer or 1} of {depth}; "
                   f"paired data {path}")
        return Preparation(method_params={"parallel_path": str(path)}, train_fields={"cka_path": str(path)},
                           space=space, params=params, summary=summary)


STEP = Translations()
