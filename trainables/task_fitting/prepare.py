"""The BTF MLM run, once per sweep: the preparation step BTF and self-training share.

``needed``: only when a trial may start from the task-fitted encoder (self-training alone, ``btf=False``,
needs no MLM run and no MLM head). ``check_model``: the MLM head, before any tokenisation.
``prepare`` (no Ray) builds the corpus (English task text + the target languages' unlabelled
text, labels dropped) and the run's plan with every MLM step count a trial may ask for;
``Preparation.run`` is the one Ray Train MLM run (a checkpoint at each step count), skipped on a
cache hit. Its settings (``BtfSettings``) come from the profile; it has no flags.
"""

from __future__ import annotations

from typing import Any

from trainables.preparation import Cluster, Preparation, PreparationError, PrepareContext, PrepareStep, StepUse
from trainables.task_fitting.mlm import BtfSettings
from trainables.tasks import TaskSpec, split_key


def _starts_from_btf(ctx: PrepareContext) -> list[StepUse]:
    """The uses whose trials may start from the task-fitted encoder: ``btf`` true, or searched."""
    return [use for use in ctx.uses if any(value is not False for value in ctx.knob_values("btf", use))]


def mlm_steps(ctx: PrepareContext) -> tuple[int, ...]:
    """Every MLM step count a trial that starts from the task-fitted encoder may ask for: a searched choice's values
    (as given: the default is not added) for the arms that take the search's values, and the resolved value (--set,
    the arm's, else the default) of the arms that run with their own."""
    from search_spaces.spec import Choice

    dimension = ctx.space.get("mlm_steps")
    if dimension is not None and not isinstance(dimension, Choice):
        raise PreparationError(f"--space mlm_steps={dimension}: search it as a choice, e.g. "
                               "'choice(1000,3000,10000)' (each value is a checkpoint of the one BTF run)")
    steps: set = set()
    for use in _starts_from_btf(ctx):
        for value in ctx.knob_values("mlm_steps", use):
            steps |= set(value.values) if isinstance(value, Choice) else {value}
    bad = sorted(str(step) for step in steps if not (isinstance(step, int) and step > 0))
    if bad:
        raise PreparationError(f"mlm_steps {', '.join(bad)}: MLM step counts are whole numbers > 0")
    return tuple(sorted(steps))


class BtfRun(PrepareStep):
    key = "btf"
    label = "BTF"
    settings_type = BtfSettings
    unneeded = ("no arm or search of this sweep starts from the task-fitted encoder (btf=False): no MLM run, and "
                "the model needs no MLM head")

    def needed(self, ctx: PrepareContext) -> bool:
        """Whether any trial may start from the task-fitted encoder; self-training alone (btf=False) needs only
        the unlabelled text (``unlabelled_languages``), which any encoder can label."""
        return bool(_starts_from_btf(ctx))

    def check(self, ctx: PrepareContext) -> None:
        ctx.target_languages()
        mlm_steps(ctx)

    def check_model(self, ctx: PrepareContext) -> None:
        """BTF continues the model's MLM training: it needs the trained MLM head."""
        from trainables.model_checks import MlmHeadMissing, check_mlm_head

        try:
            check_mlm_head(ctx.model_dir)
        except MlmHeadMissing as exc:
            raise PreparationError(str(exc).replace("SALT predicts tokens with it", "BTF continues its MLM training")
                                   .replace("SALT predicts tokens with the MLM head", "BTF continues MLM training")
                                   + " (self-training alone, btf=False, needs none)") from None

    def unlabelled_languages(self, ctx: PrepareContext) -> tuple[str, ...]:
        return ctx.target_languages()

    def describe(self, ctx: PrepareContext) -> tuple[list[str], dict[str, Any]]:
        from trainables.tasks import parse_languages

        task, settings = ctx.task, ctx.settings
        fixed = parse_languages(ctx.fixed.get("train_languages"))
        languages = ", ".join(fixed) if fixed else f"all {len(task.target_languages)} target languages"
        try:
            steps = ", ".join(map(str, mlm_steps(ctx)))
        except PreparationError as exc:
            steps = f"(invalid: {exc})"
        lines = [
            f"btf          MLM on unlabelled {task.source_language} + {languages} task text (train splits, labels "
            f"dropped), one Ray Train run to {steps} steps (a checkpoint at each), lr {settings.learning_rate:g} "
            f"constant after warmup, batch {settings.batch_size}; cached by content hash under {ctx.cache_dir}",
            "self-train   teachers fine-tuned on English; Ray Data pseudo-labels the target text (GPU actors when "
            "present); hard-label threshold from English dev (lowest confidence reaching target_precision) or fixed; "
            "students: (1 - w) MSE(soft) + w CE(hard); voters arm: teachers of other seeds vote, agreed labels only",
        ]
        return lines, dict(ctx.space)

    def prepare(self, ctx: PrepareContext) -> Preparation:
        """The BTF corpus and plan; the MLM run itself (Ray Train) runs in ``Preparation.run`` unless cached."""
        from trainables.data import load_raw, load_unlabelled
        from trainables.task_fitting.mlm import (BtfPlan, btf_cache_path, build_corpus, covering_plan, is_cached,
                                                 run_btf_cached)
        from trainables.model_checks import model_digest

        task, settings = ctx.task, ctx.settings
        languages = ctx.target_languages()
        steps = mlm_steps(ctx)
        if settings.batch_size % ctx.workers_per_trial:
            raise PreparationError(f"BTF batch size {settings.batch_size} does not split over "
                                   f"--workers-per-trial {ctx.workers_per_trial}")
        english = load_raw(task, ctx.data_dir, languages=[task.source_language], eval_splits=())
        unlabelled = load_unlabelled(task, ctx.data_dir, languages)
        texts = {task.source_language: _texts(english[split_key(task.train_split, task.source_language)], task)}
        texts.update({lang: _texts(unlabelled[f"unlabelled_{lang}"], task) for lang in languages})
        cache_dir = ctx.cache_dir
        corpus_path, corpus_digest = build_corpus(texts, cache_dir / "btf-corpus")
        plan = BtfPlan(model_dir=ctx.model_dir, corpus_path=str(corpus_path), corpus_digest=corpus_digest,
                       model_digest=model_digest(ctx.model_dir), languages=(task.source_language, *languages),
                       steps=steps, settings=settings)
        plan = covering_plan(plan, cache_dir)  # a cached run to more step counts holds these checkpoints too
        path = btf_cache_path(plan, cache_dir)
        cached = is_cached(plan, cache_dir)  # the MLM head was checked before tokenisation (``check_model``)
        params = {"augment.cache_key": plan.key, "augment.cache_path": str(path), "btf.languages": ",".join(plan.languages),
                  "btf.steps": ",".join(map(str, steps)), "btf.run_steps": ",".join(map(str, plan.steps)), "btf.corpus_rows": sum(len(t) for t in texts.values())}
        params.update({f"sweep.btf.{k}": v for k, v in ctx.settings_dict.items()})
        summary = (f"[btf] MLM on {params['btf.corpus_rows']} unlabelled texts ({', '.join(plan.languages)}) to "
                   f"{', '.join(map(str, steps))} steps; {'cached' if cached else 'to run'}: {path}"
                   f"{'' if plan.steps == steps else ' (a run to ' + ', '.join(map(str, plan.steps)) + ' steps)'}")
        workers, cpus, max_failures = ctx.workers_per_trial, ctx.cpus_per_worker, ctx.max_failures

        def run(tracker, cluster: Cluster) -> None:
            result = run_btf_cached(plan, cache_dir, storage_path=str(cache_dir / "btf-runs"),
                                    num_workers=workers, use_gpu=cluster.gpus >= 1,
                                    cpus_per_worker=cpus, max_failures=max_failures,
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


STEP = BtfRun()
