"""SALT's preparation step: choosing the languages and the candidate scan (the ``--salt-*`` flags).

``check`` finds the word lists and ``check_model`` the model's MLM head, both before any tokenisation
(and in ``--dry-run``). ``prepare`` (no Ray) checks and plans: the language choice rule, each language's
vocabulary, the scan's cache key, and the search space with one threshold per chosen language.
``Preparation.run`` (Ray is up) runs the Ray Data scan unless cached; the parent MLflow run gets tag
``augment.cache`` = ``hit`` / ``miss``.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any, Mapping

from trainables.methods.salt.method import Params
from trainables.methods.salt.scan import SALT_SCAN, ScanSettings
from trainables.arg_types import non_negative_float, positive_int
from trainables.method_spec import Cluster, Preparation, PreparationError, PrepareContext, PrepareStep
from trainables.tasks import TaskSpec, split_key


def _languages(text: str) -> tuple[str, ...]:
    languages = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [lang for lang in languages if not re.fullmatch(r"[a-z]{2,3}", lang)]
    if bad or not languages:
        raise argparse.ArgumentTypeError(f"write language codes, e.g. fr,de,es, got {text!r}")
    if "en" in languages:
        raise argparse.ArgumentTypeError("en is the source language (its synonyms are always scanned); name target languages")
    if len(set(languages)) != len(languages):
        raise argparse.ArgumentTypeError(f"languages repeat in {text!r}")
    return languages


class SaltScan(PrepareStep):
    key = "salt"
    label = "SALT"
    flag_prefix = "--salt-"
    settings_type = ScanSettings
    resume_may_differ = ("batch_size", "gpus_per_actor", "concurrency")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        salt = parser.add_argument_group("SALT (salt_* experiments)")
        salt.add_argument("--salt-languages", type=_languages, help="code-switching languages, e.g. fr,de,es "
                          "(default: the paper's rule, the 3 with the highest vocabulary overlap)")
        salt.add_argument("--salt-num-languages", type=positive_int, default=3, help="how many languages the rule picks")
        salt.add_argument("--salt-wordlists", help="directory of <lang>.txt frequency word lists (default: wordfreq)")
        salt.add_argument("--salt-top-k", type=positive_int, default=1, help="candidates kept per token and language")
        salt.add_argument("--salt-shared-threshold", action="store_true",
                          help="search one threshold for every target language (the paper) instead of one per language")
        salt.add_argument("--salt-scan-batch-size", type=positive_int, default=64, help="training examples per scan batch")
        salt.add_argument("--salt-scan-gpus", type=non_negative_float,
                          help="GPUs per scan actor, fractional allowed (default: 1 if the cluster has GPUs, else 0)")
        salt.add_argument("--salt-scan-concurrency", type=positive_int,
                          help="scan actors (default: one per GPU, or one per 2 CPUs)")

    def settings_from_args(self, args: argparse.Namespace, profile_values: Mapping[str, Any]) -> ScanSettings:
        settings = ScanSettings(**{**profile_values, **dict(
            languages=args.salt_languages, wordlists=args.salt_wordlists, num_languages=args.salt_num_languages,
            top_k=args.salt_top_k, batch_size=args.salt_scan_batch_size, gpus_per_actor=args.salt_scan_gpus,
            concurrency=args.salt_scan_concurrency, shared_threshold=args.salt_shared_threshold)})
        if settings.wordlists and not Path(settings.wordlists).is_dir():
            raise ValueError(f"--salt-wordlists {settings.wordlists}: no such directory")
        return settings

    def check(self, ctx: PrepareContext) -> None:
        """The word lists, before the model and data are fetched (the smoke model's are generated: nothing to check)."""
        from trainables.methods.salt.vocab import WordLists, WordListsUnavailable, check_word_lists

        settings: ScanSettings = ctx.settings
        if settings.languages and ctx.task.is_subset:  # on --languages, only into the chosen targets
            ctx.check_chosen(settings.languages, "--salt-languages")
        if not settings.wordlists and ctx.smoke_wordlists is not None:
            return
        try:
            check_word_lists(WordLists(settings.wordlists), ctx.task.target_languages, settings.languages)
        except WordListsUnavailable as exc:
            raise PreparationError(str(exc)) from None

    def check_model(self, ctx: PrepareContext) -> None:
        """The scan predicts tokens with the model's MLM head: refused without it, before any tokenisation."""
        from trainables.model_checks import MlmHeadMissing, check_mlm_head

        try:
            check_mlm_head(ctx.model_dir)
        except MlmHeadMissing as exc:
            raise PreparationError(str(exc)) from None

    def describe(self, ctx: PrepareContext) -> tuple[list[str], dict[str, Any]]:
        from search_spaces.salt import PER_LANGUAGE, expand_per_language

        settings: ScanSettings = ctx.settings
        lists = settings.wordlists or ("generated word lists of the smoke languages" if ctx.model is None
                                       else "wordfreq top-10000 lists")
        if settings.languages:
            languages = ", ".join(settings.languages) + " (--salt-languages)"
            space = expand_per_language(dict(ctx.space), settings.languages, shared=settings.shared_threshold)
        else:
            languages = (f"the {settings.num_languages} target languages with the highest vocabulary overlap with "
                         f"their word list, character-split ones (CJK) skipped: chosen from the model at start "
                         f"(the paper: fr, de, es for mBERT)")
            space = dict(ctx.space)
            if not settings.shared_threshold and PER_LANGUAGE in space:
                space = {("threshold_<lang>" if k == PER_LANGUAGE else k): v for k, v in space.items()}
        gpus = ("on a GPU cluster the actors per GPU with the best measured scan rate (orchestrator/throughput.csv; "
                "1 without a figure)" if settings.gpus_per_actor is None else f"{settings.gpus_per_actor:g} GPU per actor")
        defaults = Params()
        keep = ctx.fixed.get("keep_original", defaults.keep_original)
        rule = ctx.fixed.get("candidate_rule", defaults.candidate_rule)
        lines = [
            f"salt scan    English synonyms + {languages}; word lists: {lists}",
            f"             unmasked MLM over each training sentence, top-{settings.top_k} whole-word candidates per "
            f"language (full-vocabulary softmax); Ray Data, {gpus}; cached by content hash under {ctx.cache_dir}",
            "thresholds   " + ("one shared target threshold (the paper)" if settings.shared_threshold else
                               "one per scan language (threshold_<lang>)") + " + threshold_en for English synonyms",
            "salt data    one code-switched copy per example and language (English synonyms + the scan languages); "
            + ("originals kept beside the copies (keep_original=True)" if keep else
               "copies only, originals dropped (keep_original=False: Robust-XLT's perturb.py writes only the copies)"),
            "             target candidates: " + (
                "the best token of the language's vocabulary; the original word when it is that best, so no "
                "substitution (candidate_rule=paper, section 2.1)" if rule == "paper" else
                f"the best token other than the original word (candidate_rule={rule})")
            + "; English synonyms: the best token other than the original",
        ]
        return lines, space

    def prepare(self, ctx: PrepareContext) -> Preparation:
        from transformers import AutoTokenizer

        from search_spaces.salt import expand_per_language
        from trainables.data import dataset_content_hash
        from trainables.methods.salt.scan import ScanPlan, cache_path, is_cached, scan_cached
        from trainables.model_checks import model_digest
        from trainables.methods.salt.vocab import WordLists, WordListsUnavailable, choose_languages, language_vocab

        settings: ScanSettings = ctx.settings
        task = ctx.task
        lists = WordLists(_wordlists_dir(ctx))
        tokenizer = AutoTokenizer.from_pretrained(ctx.model_dir)
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

        space = expand_per_language(dict(ctx.space), languages, shared=settings.shared_threshold)
        stray = sorted(key for key in space if key.startswith("threshold_")
                       and key not in ("threshold_en", "threshold_target") and key[len("threshold_"):] not in languages)
        if stray:
            raise PreparationError(f"--space {stray[0]}: not a scan language (SALT code-switches into "
                                   f"{', '.join(languages)}); use --salt-languages to choose them")

        raw_train = _raw_train(task, ctx.data_dir)
        plan = ScanPlan(model_dir=ctx.model_dir, text_fields=task.text_fields, max_length=ctx.max_length,
                        top_k=settings.top_k, vocab={lang: v.token_ids for lang, v in vocabs.items()},
                        data_digest=dataset_content_hash(raw_train), model_digest=model_digest(ctx.model_dir),
                        words_digests={lang: v.words_digest for lang, v in vocabs.items()})
        cache_dir = ctx.cache_dir
        path = cache_path(plan, cache_dir)
        cached = is_cached(plan, cache_dir)  # the MLM head was checked before tokenisation (``check_model``)

        params = {"augment.cache_key": plan.key, "augment.cache_path": str(path), "salt.languages": ",".join(languages),
                  "salt.language_rule": choice.rule, "salt.wordlists": lists.describe(), "salt.top_k": settings.top_k,
                  "salt.shared_threshold": settings.shared_threshold,
                  "salt.no_word_list": ",".join(choice.no_word_list) or "-"}
        params.update({f"sweep.salt.{k}": v for k, v in ctx.settings_dict.items()})
        params.update({f"salt.overlap.{lang}": round(v.overlap, 4) for lang, v in choice.vocabs.items()})
        params.update({f"salt.char_split.{lang}": v.char_split for lang, v in choice.vocabs.items()})
        params.update({f"salt.vocab_size.{lang}": len(v.token_ids) for lang, v in vocabs.items()})
        rule = ("given by --salt-languages" if choice.rule == "given" else
                f"top {settings.num_languages} by vocabulary overlap ({choice.overlap_table()})")
        summary = (f"[salt] code-switching into {', '.join(languages)} ({rule}) + English synonyms; "
                   f"word lists: {lists.describe()}; candidate scan {'cached' if cached else 'to run'}: {path}")

        def run(tracker, cluster: Cluster) -> None:
            if settings.gpus_per_actor is not None:
                gpus = settings.gpus_per_actor
            elif cluster.gpus >= 1:  # actors per GPU from the measured scan rates (1 without a figure)
                share = cluster.share(SALT_SCAN)
                gpus = share.gpus_per_actor
                print(f"[salt] candidate scan: {share.reason}", flush=True)
                tracker.set_tags({"salt.scan_sharing": share.reason[:5000]})
            else:
                gpus = 0.0
            if settings.concurrency is not None:
                concurrency = settings.concurrency
            elif gpus > 0:
                concurrency = max(1, math.floor(cluster.gpus / gpus + 1e-9))
            else:
                concurrency = max(1, int(cluster.cpus) // 2)
            tracker.set_tags({"salt.scan_gpus_per_actor": f"{gpus:g}", "salt.scan_actors": str(concurrency)})
            result = scan_cached(plan, raw_train, cache_dir, batch_size=settings.batch_size, gpus_per_actor=gpus,
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


def _wordlists_dir(ctx: PrepareContext) -> str | None:
    """``--salt-wordlists``; the smoke model's synthetic languages get their generated lists."""
    if ctx.settings.wordlists:
        return ctx.settings.wordlists
    if ctx.smoke_wordlists is not None:
        return ctx.smoke_wordlists()
    return None


def _raw_train(task: TaskSpec, data_dir: str | None):
    """The source-language training split's text, as the scan reads it (each sentence on its own)."""
    from trainables.data import load_raw

    raw = load_raw(task, data_dir, languages=[task.source_language], eval_splits=())
    return raw[split_key(task.train_split, task.source_language)]


STEP = SaltScan()
