"""Work a method needs once per sweep, before any trial: for SALT, choosing the languages and the scan.

Two phases, so that bad input fails before Ray starts:

- ``prepare_method`` (no Ray): checks and plans. For SALT: word lists, the language choice rule,
  each language's vocabulary, the scan's cache key, the MLM head (only when the scan must run),
  and the search space with one threshold per chosen language. Errors are one line (exit 2).
- ``Preparation.run`` (Ray is up): the expensive part, skipped on a cache hit. For SALT, the Ray
  Data scan; the parent MLflow run gets tag ``augment.cache`` = ``hit`` / ``miss`` and the key.

What a trial needs from it (the cache path, the languages) reaches every trial's configuration
through ``Preparation.method_params``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from orchestrator.assets import Assets
from orchestrator.config import SweepConfig
from orchestrator.experiments import Experiment
from search_spaces.spec import Dimension
from trainables.tasks import TaskSpec, split_key


class PreparationError(Exception):
    """A method cannot be prepared with this input. ``str()`` is one line for the user."""


@dataclass
class Preparation:
    """What a sweep's method preparation hands to the rest of the sweep."""

    method_params: dict[str, Any] = field(default_factory=dict)  # into every trial's config
    train_fields: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields of every trial (e.g. cka_path)
    space: dict[str, Dimension] | None = None  # the search space, when the method reshapes it
    params: dict[str, Any] = field(default_factory=dict)  # logged on the parent run
    summary: str = ""  # printed before the stages start
    run: Callable[[Any, dict[str, float]], None] = lambda tracker, cluster: None  # Ray work; tags the parent run


def check_method_inputs(cfg: SweepConfig, experiment: Experiment, task: TaskSpec) -> None:
    """Seconds-cheap checks of a method's own inputs, before the model and data are fetched and tokenised."""
    if experiment.uses("xmixup"):
        from trainables.xmixup.translations import TranslationsUnavailable, check_translations, resolve_translations

        dev_languages = task.target_languages if cfg.select_on == "multilingual-dev" else ()
        try:
            root = resolve_translations(cfg.xmixup.translations, task, cfg.cache_dir, smoke=_generated_data(cfg))
            check_translations(task, root, _target_languages(cfg, task), dev_languages=dev_languages)
        except TranslationsUnavailable as exc:
            raise PreparationError(str(exc)) from None
    if experiment.uses("btf") or experiment.uses("self_training"):
        _target_languages(cfg, task)
        _mlm_steps(cfg)


def prepare_method(cfg: SweepConfig, experiment: Experiment, task: TaskSpec, assets: Assets) -> Preparation:
    if experiment.uses("salt"):
        return _prepare_salt(cfg, experiment, task, assets)
    if experiment.uses("xmixup"):
        return _prepare_xmixup(cfg, task, assets)
    if experiment.uses("btf") or experiment.uses("self_training"):
        return _prepare_btf(cfg, task, assets)
    return Preparation()


def unlabelled_languages(cfg: SweepConfig, experiment: Experiment, task: TaskSpec) -> tuple[str, ...]:
    """Target languages whose unlabelled text the experiment reads (BTF and self-training), else none."""
    if not (experiment.uses("btf") or experiment.uses("self_training")):
        return ()
    return _target_languages(cfg, task)


def describe_preparation(cfg: SweepConfig, experiment: Experiment, task: TaskSpec) -> tuple[list[str], dict[str, Dimension]]:
    """What ``--dry-run`` shows of the preparation (nothing is loaded), and the space as it will be searched."""
    if experiment.uses("xmixup"):
        return _describe_xmixup(cfg, task), cfg.space
    if experiment.uses("btf") or experiment.uses("self_training"):
        return _describe_btf(cfg, task), cfg.space
    if not experiment.uses("salt"):
        return [], cfg.space
    from search_spaces.salt import PER_LANGUAGE, expand_per_language

    settings = cfg.salt
    lists = settings.wordlists or ("generated word lists of the smoke languages" if cfg.model is None
                                   else "wordfreq top-10000 lists")
    if settings.languages:
        languages = ", ".join(settings.languages) + " (--salt-languages)"
        space = expand_per_language(cfg.space, settings.languages, shared=settings.shared_threshold)
    else:
        languages = (f"the {settings.num_languages} target languages with the highest vocabulary overlap with "
                     f"their word list, character-split ones (CJK) skipped: chosen from the model at start "
                     f"(the paper: fr, de, es for mBERT)")
        space = dict(cfg.space)
        if not settings.shared_threshold and PER_LANGUAGE in space:
            space = {("threshold_<lang>" if k == PER_LANGUAGE else k): v for k, v in space.items()}
    gpus = ("1 GPU per actor if the cluster has GPUs" if settings.gpus_per_actor is None
            else f"{settings.gpus_per_actor:g} GPU per actor")
    lines = [
        f"salt scan    English synonyms + {languages}; word lists: {lists}",
        f"             unmasked MLM over each training sentence, top-{settings.top_k} whole-word candidates per "
        f"language (full-vocabulary softmax); Ray Data, {gpus}; cached by content hash under {cfg.cache_dir}",
        "thresholds   " + ("one shared target threshold (the paper)" if settings.shared_threshold else
                           "one per scan language (threshold_<lang>)") + " + threshold_en for English synonyms",
    ]
    return lines, space


# -- SALT ---------------------------------------------------------------------------------------

def _prepare_salt(cfg: SweepConfig, experiment: Experiment, task: TaskSpec, assets: Assets) -> Preparation:
    from transformers import AutoTokenizer

    from search_spaces.salt import expand_per_language
    from trainables.data import dataset_content_hash
    from trainables.salt.scan import (META_FILE, MlmHeadMissing, ScanPlan, cache_path, check_mlm_head, model_digest,
                                      scan_cached)
    from trainables.salt.vocab import WordLists, WordListsUnavailable, choose_languages, language_vocab

    settings = cfg.salt
    lists = WordLists(_wordlists_dir(cfg))
    tokenizer = AutoTokenizer.from_pretrained(assets.model_dir)
    try:
        if not lists.has("en"):
            raise WordListsUnavailable(lists.missing_message(["en"]))
        choice = choose_languages(tokenizer, task.target_languages, lists, count=settings.num_languages,
                                  given=settings.languages)
        english = language_vocab(tokenizer, "en", lists.words("en"))
    except WordListsUnavailable as exc:
        raise PreparationError(str(exc)) from None
    languages = choice.chosen
    vocabs = {"en": english, **{lang: choice.vocabs[lang] for lang in languages}}

    space = expand_per_language(cfg.space, languages, shared=settings.shared_threshold)
    stray = sorted(key for key in space if key.startswith("threshold_") and key not in ("threshold_en", "threshold_target")
                   and key[len("threshold_"):] not in languages)
    if stray:
        raise PreparationError(f"--space {stray[0]}: not a scan language (SALT code-switches into "
                               f"{', '.join(languages)}); use --salt-languages to choose them")

    raw_train = _raw_train(task, assets)
    plan = ScanPlan(model_dir=assets.model_dir, text_fields=task.text_fields, max_length=assets.max_length,
                    top_k=settings.top_k, vocab={lang: v.token_ids for lang, v in vocabs.items()},
                    data_digest=dataset_content_hash(raw_train), model_digest=model_digest(assets.model_dir),
                    words_digests={lang: v.words_digest for lang, v in vocabs.items()})
    path = cache_path(plan, cfg.cache_dir)
    cached = (path / META_FILE).is_file()
    if not cached:
        try:
            check_mlm_head(assets.model_dir)
        except MlmHeadMissing as exc:
            raise PreparationError(str(exc)) from None

    params = {"augment.cache_key": plan.key, "augment.cache_path": str(path), "salt.languages": ",".join(languages),
              "salt.language_rule": choice.rule, "salt.wordlists": lists.describe(), "salt.top_k": settings.top_k,
              "salt.shared_threshold": settings.shared_threshold,
              "salt.no_word_list": ",".join(choice.no_word_list) or "-"}
    params.update({f"sweep.salt.{k}": v for k, v in cfg.to_dict()["salt"].items()})
    params.update({f"salt.overlap.{lang}": round(v.overlap, 4) for lang, v in choice.vocabs.items()})
    params.update({f"salt.char_split.{lang}": v.char_split for lang, v in choice.vocabs.items()})
    params.update({f"salt.vocab_size.{lang}": len(v.token_ids) for lang, v in vocabs.items()})
    rule = ("given by --salt-languages" if choice.rule == "given" else
            f"top {settings.num_languages} by vocabulary overlap ({choice.overlap_table()})")
    summary = (f"[salt] code-switching into {', '.join(languages)} ({rule}) + English synonyms; "
               f"word lists: {lists.describe()}; candidate scan {'cached' if cached else 'to run'}: {path}")

    def run(tracker, cluster: dict[str, float]) -> None:
        gpus = settings.gpus_per_actor if settings.gpus_per_actor is not None else (1.0 if cluster.get("GPU", 0) >= 1 else 0.0)
        if settings.concurrency is not None:
            concurrency = settings.concurrency
        elif gpus > 0:
            concurrency = max(1, math.floor(cluster.get("GPU", 0) / gpus + 1e-9))
        else:
            concurrency = max(1, int(cluster.get("CPU", 1)) // 2)
        result = scan_cached(plan, raw_train, cfg.cache_dir, batch_size=settings.batch_size, gpus_per_actor=gpus,
                             concurrency=concurrency, log=lambda line: print(line, flush=True))
        if "augment.cache" not in tracker.tags():  # a resumed sweep keeps what its first start found
            tracker.set_tags({"augment.cache": "hit" if result.hit else "miss"})
        if result.hit:
            print(f"[salt] candidate scan: cache hit ({result.key[:16]}), no MLM pass", flush=True)
        else:
            tracker.log_metrics({"salt_scan_seconds": result.meta["seconds"],
                                 "salt_scan_sentences_per_second": result.meta["sentences_per_second"]})

    return Preparation(method_params={"candidates_path": str(path), "languages": list(languages)}, space=space,
                       params=params, summary=summary, run=run)


def _wordlists_dir(cfg: SweepConfig) -> str | None:
    """``--salt-wordlists``; the smoke model's synthetic languages get their generated lists."""
    if cfg.salt.wordlists:
        return cfg.salt.wordlists
    if cfg.model is None:
        from trainables.smoke_assets import build_smoke_wordlists

        return str(build_smoke_wordlists(cfg.cache_dir))
    return None


def _raw_train(task: TaskSpec, assets: Assets):
    """The source-language training split's text, as the scan reads it (each sentence on its own)."""
    from trainables.data import load_raw

    raw = load_raw(task, assets.data_dir, languages=[task.source_language], eval_splits=())
    return raw[split_key(task.train_split, task.source_language)]


# -- X-Mixup ------------------------------------------------------------------------------------

def _target_languages(cfg: SweepConfig, task: TaskSpec) -> tuple[str, ...]:
    """The target languages a method trains on: ``train_languages`` when fixed (profile or --set), else every
    target (X-Mixup: the translate-train languages; BTF / self-training: the unlabelled text)."""
    from trainables.paired import parse_languages

    languages = parse_languages(cfg.train_overrides.get("train_languages")) or task.target_languages
    unknown = sorted(set(languages) - set(task.target_languages))
    if unknown:
        raise PreparationError(f"train_languages {', '.join(unknown)}: not target languages of {task.name} "
                               f"({', '.join(task.target_languages)})")
    return tuple(languages)


def _generated_data(cfg: SweepConfig) -> bool:
    """Whether the task data is the generated smoke data (then its translations are generated too)."""
    return cfg.data_dir is None and (cfg.profile == "smoke" or cfg.model is None)


def _describe_xmixup(cfg: SweepConfig, task: TaskSpec) -> list[str]:
    from trainables.paired import parse_languages

    source = cfg.xmixup.translations or ("generated parallel data (smoke)" if _generated_data(cfg)
                                         else "none given: pass --xmixup-translations DIR or a hub dataset id")
    fixed = parse_languages(cfg.train_overrides.get("train_languages"))
    languages = ", ".join(fixed) if fixed else f"all {len(task.target_languages)} target languages"
    reference = [flag for flag, on in (("λ frozen (W = 1, b = 0)", cfg.train_overrides.get("freeze_ratio")),
                                       ("p* per epoch, one coin per batch", cfg.train_overrides.get("sampling") == "reference"),
                                       ("raw-logit inference", cfg.train_overrides.get("inference") == "logits")) if on]
    return [
        f"translations {source}: translate-train ({languages}) with back-translations for scheduled sampling, "
        f"translate-test for every target language; tokenised once, cached by content hash under {cfg.cache_dir}",
        "x-mixup      mix in layer l with the layer's own attention; λ = λ0 σ((H(A) + H(Aᵀ)) W + b), W and b "
        "trained; p* = k / (k + exp(step / k)) per step and example; loss α CE_S + (1 - α) CE_T + MSE + KL; "
        "inference averages the two sides' probabilities"
        + (f"; reference-code behaviour: {', '.join(reference)}" if reference else ""),
        "cka          linear CKA of source (translate-test English) and target test representations "
        "(mean-pooled last layer), cka_<lang> for every arm (paper Table 7)",
    ]


def _prepare_xmixup(cfg: SweepConfig, task: TaskSpec, assets: Assets) -> Preparation:
    """Translations -> paired, tokenised data (cached), and the mixup layers the encoder really has."""
    from transformers import AutoConfig

    from search_spaces.spec import Choice
    from trainables.data import load_raw
    from trainables.xmixup.translations import (TranslationsUnavailable, check_translations, load_parallel,
                                                parallel_cached, resolve_translations)

    languages = _target_languages(cfg, task)
    dev_languages = task.target_languages if cfg.select_on == "multilingual-dev" else ()
    depth = AutoConfig.from_pretrained(assets.model_dir).num_hidden_layers
    space = dict(cfg.space)
    layers = space.get("mixup_layer")
    if isinstance(layers, Choice):
        deeper = [layer for layer in layers.values if layer > depth]
        if deeper and cfg.xmixup.layers:
            raise PreparationError(f"--xmixup-layers {','.join(map(str, deeper))}: the encoder has {depth} layers")
        kept = tuple(layer for layer in layers.values if layer <= depth) or (depth,)
        space["mixup_layer"] = Choice(kept)
    fixed_layer = cfg.train_overrides.get("mixup_layer")
    if isinstance(fixed_layer, int) and not 1 <= fixed_layer <= depth:
        raise PreparationError(f"mixup_layer={fixed_layer}: the encoder has layers 1..{depth}")
    try:
        root = resolve_translations(cfg.xmixup.translations, task, cfg.cache_dir, smoke=_generated_data(cfg))
        check_translations(task, root, languages, dev_languages=dev_languages)
    except TranslationsUnavailable as exc:
        raise PreparationError(str(exc)) from None
    raw = load_raw(task, assets.data_dir, eval_splits=("validation", "test"))
    try:
        pairs = load_parallel(task, raw, root, languages, dev_languages=dev_languages)
    except TranslationsUnavailable as exc:
        raise PreparationError(str(exc)) from None
    path = parallel_cached(pairs, task, assets.model_dir, assets.max_length, cfg.cache_dir)
    params = {"xmixup.translations": str(root), "xmixup.train_languages": ",".join(languages),
              "xmixup.parallel_path": str(path), "xmixup.train_pairs": len(pairs["translate_train"]),
              "xmixup.encoder_layers": depth}
    params.update({f"sweep.xmixup.{k}": v for k, v in cfg.to_dict()["xmixup"].items()})
    summary = (f"[xmixup] {len(pairs['translate_train'])} training pairs ({', '.join(languages)}) from {root}; "
               f"mixup layers {space['mixup_layer'] if 'mixup_layer' in space else fixed_layer or 1} of {depth}; "
               f"paired data {path}")
    return Preparation(method_params={"parallel_path": str(path)}, train_fields={"cka_path": str(path)},
                       space=space, params=params, summary=summary)


# -- BTF + self-training ------------------------------------------------------------------------

def _mlm_steps(cfg: SweepConfig) -> tuple[int, ...]:
    """Every MLM step count a trial may ask for: the searched choice's values and the fixed (or default) value."""
    from search_spaces import get_space
    from search_spaces.spec import Choice

    steps = {cfg.train_overrides.get("mlm_steps", get_space("self_training").defaults["mlm_steps"])}
    dimension = cfg.space.get("mlm_steps")
    if dimension is not None:
        if not isinstance(dimension, Choice):
            raise PreparationError(f"--space mlm_steps={dimension}: search it as a choice, e.g. "
                                   "'choice(1000,3000,10000)' (each value is a checkpoint of the one BTF run)")
        steps |= set(dimension.values)
    bad = sorted(str(step) for step in steps if not (isinstance(step, int) and step > 0))
    if bad:
        raise PreparationError(f"mlm_steps {', '.join(bad)}: MLM step counts are whole numbers > 0")
    return tuple(sorted(steps))


def _describe_btf(cfg: SweepConfig, task: TaskSpec) -> list[str]:
    from trainables.paired import parse_languages

    fixed = parse_languages(cfg.train_overrides.get("train_languages"))
    languages = ", ".join(fixed) if fixed else f"all {len(task.target_languages)} target languages"
    settings = cfg.btf
    try:
        steps = ", ".join(map(str, _mlm_steps(cfg)))
    except PreparationError as exc:
        steps = f"(invalid: {exc})"
    return [
        f"btf          MLM on unlabelled {task.source_language} + {languages} task text (train splits, labels "
        f"dropped), one Ray Train run to {steps} steps (a checkpoint at each), lr {settings.learning_rate:g} "
        f"constant after warmup, batch {settings.batch_size}; cached by content hash under {cfg.cache_dir}",
        "self-train   teachers fine-tuned on English; Ray Data pseudo-labels the target text (GPU actors when "
        "present); hard-label threshold from English dev (lowest confidence reaching target_precision) or fixed; "
        "students: (1 - w) MSE(soft) + w CE(hard); voters arm: teachers of other seeds vote, agreed labels only",
    ]


def _prepare_btf(cfg: SweepConfig, task: TaskSpec, assets: Assets) -> Preparation:
    """The BTF corpus and plan; the MLM run itself (Ray Train) runs in ``Preparation.run`` unless cached."""
    from trainables.btf.mlm import BtfPlan, btf_cache_path, build_corpus, is_cached, run_btf_cached
    from trainables.data import load_raw, load_unlabelled
    from trainables.salt.scan import MlmHeadMissing, check_mlm_head, model_digest

    languages = _target_languages(cfg, task)
    steps = _mlm_steps(cfg)
    if cfg.btf.batch_size % cfg.resources.workers_per_trial:
        raise PreparationError(f"BTF batch size {cfg.btf.batch_size} does not split over "
                               f"--workers-per-trial {cfg.resources.workers_per_trial}")
    english = load_raw(task, assets.data_dir, languages=[task.source_language], eval_splits=())
    unlabelled = load_unlabelled(task, assets.data_dir, languages)
    texts = {task.source_language: _texts(english[split_key(task.train_split, task.source_language)], task)}
    texts.update({lang: _texts(unlabelled[f"unlabelled_{lang}"], task) for lang in languages})
    corpus_path, corpus_digest = build_corpus(texts, cfg.cache_dir / "btf-corpus")
    plan = BtfPlan(model_dir=assets.model_dir, corpus_path=str(corpus_path), corpus_digest=corpus_digest,
                   model_digest=model_digest(assets.model_dir), languages=(task.source_language, *languages),
                   steps=steps, settings=cfg.btf)
    path = btf_cache_path(plan, cfg.cache_dir)
    cached = is_cached(plan, cfg.cache_dir)
    if not cached:
        try:
            check_mlm_head(assets.model_dir)
        except MlmHeadMissing as exc:
            raise PreparationError(str(exc).replace("SALT predicts tokens with it", "BTF continues its MLM training")
                                   .replace("SALT predicts tokens with the MLM head", "BTF continues MLM training")) from None
    params = {"augment.cache_key": plan.key, "augment.cache_path": str(path), "btf.languages": ",".join(plan.languages),
              "btf.steps": ",".join(map(str, steps)), "btf.corpus_rows": sum(len(t) for t in texts.values())}
    params.update({f"sweep.btf.{k}": v for k, v in cfg.to_dict()["btf"].items()})
    summary = (f"[btf] MLM on {params['btf.corpus_rows']} unlabelled texts ({', '.join(plan.languages)}) to "
               f"{', '.join(map(str, steps))} steps; {'cached' if cached else 'to run'}: {path}")

    def run(tracker, cluster: dict[str, float]) -> None:
        result = run_btf_cached(plan, cfg.cache_dir, storage_path=str(cfg.cache_dir / "btf-runs"),
                                num_workers=cfg.resources.workers_per_trial, use_gpu=cluster.get("GPU", 0) >= 1,
                                cpus_per_worker=cfg.resources.cpus_per_worker, max_failures=cfg.resources.max_failures,
                                log=lambda line: print(line, flush=True))
        if "augment.cache" not in tracker.tags():  # a resumed sweep keeps what its first start found
            tracker.set_tags({"augment.cache": "hit" if result.hit else "miss"})
        if result.hit:
            print(f"[btf] cache hit ({result.key[:16]}), no MLM run", flush=True)
        elif "seconds" in result.meta:
            tracker.log_metrics({"btf_seconds": result.meta["seconds"]})

    return Preparation(method_params={"btf_path": str(path)}, params=params, summary=summary, run=run)


def _texts(dataset, task: TaskSpec) -> list[str]:
    """Plain text of each row: the text fields joined (NER: the words, space-separated)."""
    columns = [dataset[name] for name in task.text_fields]
    return [" ".join(" ".join(value) if isinstance(value, list) else str(value) for value in row)
            for row in zip(*columns)]
