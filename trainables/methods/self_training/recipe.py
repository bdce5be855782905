"""The self-training recipe of one trial, phase by phase (2310.04726; choices in docs/methods.md).

Each phase is its own Ray job, so the recipe runs in the trial's driver (``orchestrator.trial``)
and is handed three callables: ``fit`` trains one configuration as a Ray Train run and returns
its final metrics and kept model (the phases' own reports stay in their Ray Train runs; the trial
reports a summary after the teachers, after each round, and at the end); ``label`` runs the Ray Data pseudo-labelling pass; ``report``
sends the trial's metrics to Tune. Nothing here imports Ray, so a test can drive it in-process.

1. Teachers: fine-tune on English from the BTF encoder (``btf=False``: the pre-trained one), one
   per voter: seeds ``seed, seed + 1000, ...`` (``voting``), else just the trial's seed.
2. Round r = 1..rounds:
   a. the teachers label English dev and the unlabelled target-language rows (one Ray Data pass);
   b. the hard-label threshold: the lowest confidence at which the agreed English dev
      predictions reach ``target_precision`` (or ``confidence_threshold`` when fixed);
   c. pseudo-labelled rows: soft label = the voters' mean distribution; hard label = the voted
      label where voters agree and its confidence reaches the threshold (else ignored);
   d. students start from their teachers and train on those rows; they teach round r + 1. The
      last round trains only the trial seed's student: it is the model the trial reports, and
      the only phase that writes the trial's test predictions (``cfg.predictions_path``).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from datasets import Dataset, DatasetDict

from trainables.config import TrainConfig
from trainables.data import load_tokenized
from trainables.methods.self_training.method import SOFT_LABELS, SelfTraining
from trainables.method_spec import PhaseResult, RecipeTools
from trainables.methods.self_training.losses import IGNORE
from trainables.methods.self_training.pseudo_labels import Labels
from trainables.methods.self_training.thresholds import ThresholdChoice, threshold_for_precision
from trainables.task_fitting.encoder import TaskFitInputs, TaskFitParams
from trainables.tasks import TaskSpec, get_task, split_key

UNLABELLED = "unlabelled_"  # the tokenised data's unlabelled target-language parts: unlabelled_<lang>
VOTER_SEED_STRIDE = 1000
# The teachers are runs of the registry's ``btf`` method (fine-tuning from the task-fitted encoder),
# named here, not imported: method packages do not import each other.
TEACHER_METHOD = "btf"


Fit = Callable[[TrainConfig, str], PhaseResult]  # (config, run name) -> final metrics and kept model
Label = Callable[[dict[str, Dataset], list[str]], dict[str, Labels]]  # (parts, model dirs) -> labels


def voter_seeds(seed: int, voting: bool, voters: int) -> list[int]:
    return [seed + VOTER_SEED_STRIDE * k for k in range(voters if voting else 1)]


def run_self_training(cfg: TrainConfig, *, fit: Fit, label: Label, report: Callable[[dict], None],
                      work_dir: Path) -> dict:
    params = SelfTraining.parse_params(cfg.method_params)
    task = get_task(cfg.task, cfg.languages)  # the sweep's languages (--languages), as the driver read them
    metric = task.metric
    data = load_tokenized(cfg.tokenized_path)
    seeds = voter_seeds(cfg.seed, params.voting, params.voters)

    # 1. Teachers: English fine-tuning from the (BTF) encoder.
    btf_knobs = {f.name for cls in (TaskFitParams, TaskFitInputs) for f in dataclasses.fields(cls)}
    teacher_cfg = cfg.replace(method=TEACHER_METHOD, keep_model=True, predictions_path="",
                              method_params={k: v for k, v in cfg.method_params.items() if k in btf_knobs})
    teachers = [fit(teacher_cfg.replace(seed=seed), f"teacher{k}") for k, seed in enumerate(seeds)]
    summary = {f"teacher_{key}": value for key, value in teachers[0].metrics.items()
               if key == f"dev_{metric}" or key.startswith(f"test_{metric}_avg")}
    report({f"dev_{metric}": teachers[0].metrics[f"dev_{metric}"], **summary})

    pool = unlabelled_pool(data, task, params.train_languages, params.unlabelled_per_language, seed=cfg.seed)
    summary["st_pool_rows"] = sum(len(part) for part in pool.values())
    summary["st_pool_seed"] = cfg.seed  # the pool is a seeded sample of each language's rows (unlabelled_pool)
    dev_name = split_key(task.dev_split, task.source_language)
    student_params = {**cfg.method_params}
    final: dict = {}
    for round_ in range(1, params.rounds + 1):
        # 2a. One Ray Data pass: English dev (for the threshold) and the target-language pool.
        labels = label({dev_name: data[dev_name], **pool}, [t.model_dir for t in teachers])
        # 2b. The hard-label threshold.
        choice = choose_threshold(labels[dev_name], data[dev_name]["labels"], params.target_precision,
                                  params.confidence_threshold)
        # 2c. The pseudo-labelled rows.
        rows, kept = pseudo_labelled_rows(pool, {name: labels[name] for name in pool}, choice.threshold)
        path = work_dir / f"round{round_}"
        DatasetDict({"train": rows}).save_to_disk(str(path))
        summary.update(round_summary(round_, choice, kept, labels, pool))
        # 2d. Students, from their teachers.
        last = round_ == params.rounds
        students = []
        for k, (seed, teacher) in enumerate(zip(seeds[:1] if last else seeds, teachers)):
            student_cfg = cfg.replace(seed=seed, keep_model=not last, num_train_epochs=params.student_epochs,
                                      predictions_path=cfg.predictions_path if last else "",
                                      method_params={**student_params, "init_path": teacher.model_dir,
                                                     "pseudo_path": str(path)})
            students.append(fit(student_cfg, f"round{round_}-student{k}"))
        teachers = students
        final = students[0].metrics
        if not last:
            report({f"dev_{metric}": final[f"dev_{metric}"], **summary})
    result = {**final, **summary}
    report(result)
    return result


def unlabelled_pool(data: DatasetDict, task: TaskSpec, languages: tuple[str, ...], limit: int, *,
                    seed: int) -> dict[str, Dataset]:
    """At most ``limit`` unlabelled rows of each target language (all targets when none are named): a
    uniform sample without replacement drawn with ``seed`` (the trial's seed), not the file's first rows,
    which a file sorted by label, product or date would take from one corner of the distribution."""
    from trainables.config import ConfigError

    languages = languages or task.target_languages
    missing = [lang for lang in languages if UNLABELLED + lang not in data]
    if missing:
        raise ConfigError(f"no unlabelled {', '.join(missing)} text in the prepared data; run it through orchestrator.sweep")
    return {UNLABELLED + lang: data[UNLABELLED + lang].select(pool_rows(len(data[UNLABELLED + lang]), limit, seed, lang))
            for lang in languages}


def pool_rows(rows: int, limit: int, seed: int, language: str) -> list[int]:
    """The rows of a language's unlabelled part in its pool: all when ``rows <= limit``, else ``limit`` drawn
    uniformly without replacement, in file order. The generator is seeded by (seed, language), so a
    language's pool does not depend on which other languages are in the run."""
    if rows <= limit:
        return list(range(rows))
    rng = np.random.default_rng([seed % (1 << 64), zlib.crc32(language.encode())])
    return np.sort(rng.choice(rows, size=limit, replace=False)).tolist()


def choose_threshold(dev: Labels, gold, target_precision: float, fixed: float) -> ThresholdChoice:
    """The hard-label threshold from the voters' English dev predictions (only agreed ones can be kept)."""
    confidence, correct, agreed = _flat_dev(dev, gold)
    if fixed > 0:
        kept = agreed & (confidence >= fixed)
        precision = float(correct[kept].mean()) if kept.any() else math.nan
        return ThresholdChoice(fixed, precision, float(kept.mean()) if kept.size else 0.0)
    choice = threshold_for_precision(confidence[agreed], correct[agreed], target_precision)
    share = float(agreed.mean()) if agreed.size else 0.0
    return ThresholdChoice(choice.threshold, choice.precision, choice.coverage * share)


def _flat_dev(dev: Labels, gold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence, correct, agreed) per English dev prediction: per sentence, or per word (gold != -100)."""
    if isinstance(dev.labels, np.ndarray):
        gold = np.asarray(gold)
        return np.asarray(dev.confidence, np.float64), dev.labels == gold, np.asarray(dev.agreed, bool)
    words = [np.asarray(g) != IGNORE for g in gold]
    confidence = np.concatenate([c[w] for c, w in zip(dev.confidence, words)] or [np.zeros(0)])
    correct = np.concatenate([lab[w] == np.asarray(g)[w] for lab, g, w in zip(dev.labels, gold, words)] or [np.zeros(0, bool)])
    agreed = np.concatenate([a[w] for a, w in zip(dev.agreed, words)] or [np.zeros(0, bool)])
    return confidence.astype(np.float64), correct, agreed


def pseudo_labelled_rows(pool: dict[str, Dataset], labels: dict[str, Labels],
                         threshold: float) -> tuple[Dataset, dict[str, float]]:
    """The students' training rows, and per part the share of sentences (words) given a hard label."""
    columns: dict[str, list] = {}
    kept_share = {}
    for name, part in pool.items():
        voted = labels[name]
        keep = lambda lab, c, a: np.where(a & (c >= threshold), lab, IGNORE)  # noqa: E731
        if isinstance(voted.labels, np.ndarray):  # one label per sentence
            hard = keep(voted.labels, voted.confidence, voted.agreed)
            soft = [row.tolist() for row in voted.probabilities]
            kept_share[name] = float((hard != IGNORE).mean()) if len(hard) else 0.0
            hard = hard.tolist()
        else:  # one per word
            hard = [keep(lab, c, a) for lab, c, a in zip(voted.labels, voted.confidence, voted.agreed)]
            words = sum(int((lab != IGNORE).sum()) for lab in voted.labels)
            kept_share[name] = sum(int((h != IGNORE).sum()) for h in hard) / max(words, 1)
            soft = [row.tolist() for row in voted.probabilities]
            hard = [h.tolist() for h in hard]
        for column in ("input_ids", "attention_mask", "token_type_ids", "length"):
            if column in part.column_names:
                columns.setdefault(column, []).extend(part[column])
        columns.setdefault("labels", []).extend(hard)
        columns.setdefault(SOFT_LABELS, []).extend(soft)
    return Dataset.from_dict(columns), kept_share


def round_summary(round_: int, choice: ThresholdChoice, kept: dict[str, float], labels: dict[str, Labels],
                  pool: dict[str, Dataset]) -> dict[str, float]:
    """Round r's threshold and how much of the target text it labelled, as flat metrics.

    A round whose English dev predictions reach the target precision at no cut keeps no hard label:
    it reports coverage 0 and no threshold or precision (inf and nan would only be noise in Tune's logs).
    """
    prefix = f"st_r{round_}_"
    out = {prefix + "dev_coverage": choice.coverage}
    if math.isfinite(choice.threshold):
        out.update({prefix + "threshold": choice.threshold, prefix + "dev_precision": choice.precision})
    total = sum(len(pool[name]) for name in pool)
    out[prefix + "kept"] = sum(kept[name] * len(pool[name]) for name in pool) / max(total, 1)
    for name, share in kept.items():
        out[prefix + "kept_" + name[len(UNLABELLED):]] = share
    agreed = [_agreed_share(labels[name]) for name in pool]
    out[prefix + "agreed"] = float(np.mean(agreed)) if agreed else math.nan
    return out


def _agreed_share(voted: Labels) -> float:
    """Share of sentences (or words) on which enough voters agreed."""
    if isinstance(voted.agreed, np.ndarray):
        return float(np.mean(voted.agreed)) if voted.agreed.size else math.nan
    words = np.concatenate([a[lab != IGNORE] for a, lab in zip(voted.agreed, voted.labels)] or [np.zeros(0, bool)])
    return float(words.mean()) if words.size else math.nan


def run_trial(cfg: TrainConfig, tools: RecipeTools) -> dict:
    """One self-training trial (the spec's recipe): ``run_self_training`` with the trial driver's
    ``fit`` and a Ray Data labeller on the resources the trial's training runs use in turn."""
    from transformers import AutoTokenizer

    from trainables.methods.self_training.pseudo_labels import label_with_ray_data

    task = get_task(cfg.task, cfg.languages)  # the sweep's languages (--languages), as the driver read them
    pad_token_id = AutoTokenizer.from_pretrained(cfg.model).pad_token_id or 0
    agreement = SelfTraining.parse_params(cfg.method_params).agreement

    def label(parts, model_dirs):
        return label_with_ray_data(parts, model_dirs, num_labels=task.num_labels, token_task=task.kind == "token",
                                   agreement=agreement,
                                   pad_token_id=pad_token_id,
                                   gpus_per_actor=tools.gpus_per_actor,
                                   concurrency=1)

    return run_self_training(cfg, fit=tools.fit, label=label, report=tools.report, work_dir=tools.work_dir)
