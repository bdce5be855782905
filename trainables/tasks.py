"""The benchmark tasks: what each one's data looks like and how it is scored.

One ``TaskSpec`` per benchmark. Everything else (loaders, the training loop, the report)
reads the task's languages, text fields and labels from here, so a new benchmark is one
entry in ``TASKS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

TASK_KINDS = ("sequence", "token")
EXTRA_METRICS = ("macro_f1",)  # what a sequence task may log beside its ``metric`` (``TaskSpec.extra_metrics``)
UNLABELLED_SPLIT = "unlabelled"  # ``load_unlabelled``'s parts: ``unlabelled_<lang>``, text only


@dataclass(frozen=True)
class TaskSpec:
    """A cross-lingual benchmark in the shape the Hugging Face hub serves it.

    ``text_fields`` are the input columns (one for single-sentence tasks, two for pairs);
    ``label_names`` are in the order of the hub's ``ClassLabel`` (label id = index).
    The source language is the only one whose training split is used with labels (zero-shot
    transfer); other languages' training splits serve only as unlabelled text.

    ``kind`` is ``"sequence"`` (one label per example) or ``"token"`` (NER: the text field is a
    list of words and the label field a list of tags, one per word). ``hub_config`` names the
    hub config of a language (``{lang}`` is replaced).

    ``metric`` is what model selection reads (``dev_<metric>``) and every run reports
    (``test_<metric>_<lang>``); ``extra_metrics`` are logged beside it on every evaluation
    (``macro_f1``: ``dev_macro_f1_<lang>``, ``test_macro_f1_<lang>`` and their averages);
    ``table_metric`` is the one the results tables report ("" = ``metric``).

    ``benchmark_languages`` is set only on a spec restricted to some of the benchmark's languages
    (``restrict``, a sweep's ``--languages``): then ``languages`` are the chosen ones, and everything that
    reads them (loading, evaluation, averages, tables) follows; the benchmark's own list stays known so
    that nothing calls an average over the chosen targets the benchmark's average.
    """

    name: str
    hub_id: str
    languages: tuple[str, ...]
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    label_field: str = "label"
    source_language: str = "en"
    metric: str = "acc"
    train_split: str = "train"
    dev_split: str = "validation"
    test_split: str = "test"
    kind: str = "sequence"
    hub_config: str = "{lang}"
    extra_metrics: tuple[str, ...] = ()
    table_metric: str = ""
    # Rows of the hub copy's source-language training split: what the dry run's cost estimate trains on
    # before any data is loaded (``orchestrator.estimate``); 0: unknown.
    train_rows: int = 0
    benchmark_languages: tuple[str, ...] = ()  # the benchmark's languages when ``languages`` is a subset

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name}: kind must be one of {', '.join(TASK_KINDS)}, got {self.kind!r}")
        unknown = [m for m in self.extra_metrics if m not in EXTRA_METRICS or self.kind != "sequence"]
        if unknown:
            raise ValueError(f"task {self.name}: extra metrics {unknown} unknown; a sequence task may log {EXTRA_METRICS}")
        if self.table_metric and self.table_metric not in (self.metric, *self.extra_metrics):
            raise ValueError(f"task {self.name}: table_metric {self.table_metric!r} is not a metric it logs")
        if self.kind == "token" and len(self.text_fields) != 1:
            raise ValueError(f"task {self.name}: a token task has one text field (the word list)")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def reported_metric(self) -> str:
        """The score the results tables show: ``table_metric``, else ``metric``."""
        return self.table_metric or self.metric

    @property
    def target_languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in self.languages if lang != self.source_language)

    @property
    def is_subset(self) -> bool:
        """Whether this spec runs on only some of the benchmark's languages (``restrict``)."""
        return bool(self.benchmark_languages) and self.benchmark_languages != self.languages

    @property
    def benchmark(self) -> "TaskSpec":
        """The whole benchmark, every language (what generated smoke data and published numbers cover)."""
        if not self.benchmark_languages:
            return self
        return dataclasses.replace(self, languages=self.benchmark_languages, benchmark_languages=())

    def restrict(self, languages: Sequence[str]) -> "TaskSpec":
        """This benchmark on ``languages`` only, in the benchmark's order (empty or all: the whole benchmark).

        They must hold the source language (training data and the zero-shot protocol) and at least one
        target, all of them the benchmark's; ``ValueError`` (one line) otherwise."""
        full = self.benchmark
        wanted = list(dict.fromkeys(languages))
        if not wanted:
            return full
        unknown = [lang for lang in wanted if lang not in full.languages]
        if unknown:
            raise ValueError(f"--languages {','.join(unknown)}: not {full.name} languages "
                             f"({','.join(full.languages)})")
        if full.source_language not in wanted:
            raise ValueError(f"--languages must include the source language {full.source_language} "
                             f"(training and English dev are on it), e.g. {full.source_language},{','.join(wanted)}")
        if len(wanted) < 2:
            raise ValueError(f"--languages {full.source_language}: name at least one target language too, e.g. "
                             f"{full.source_language},{full.target_languages[0]}")
        chosen = tuple(lang for lang in full.languages if lang in wanted)
        if chosen == full.languages:
            return full
        return dataclasses.replace(full, languages=chosen, benchmark_languages=full.languages)

    def hub_config_name(self, language: str) -> str:
        """The hub config holding ``language`` (XNLI, PAWS-X, MARC and WikiANN: the language code)."""
        return self.hub_config.format(lang=language)


XNLI = TaskSpec(
    name="xnli",
    hub_id="facebook/xnli",
    languages=("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
    text_fields=("premise", "hypothesis"),
    label_names=("entailment", "neutral", "contradiction"),
    train_rows=392_702,  # MultiNLI's training set, XNLI's English train split
)

PAWSX = TaskSpec(
    name="pawsx",
    hub_id="google-research-datasets/paws-x",
    languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
    text_fields=("sentence1", "sentence2"),
    label_names=("different", "paraphrase"),
    train_rows=49_401,
)

# The hub's copy of the multilingual Amazon reviews (the original is gone): ``text`` is title and
# body, ``label`` 0..4 for 1..5 stars. Selected on accuracy like the other sentence tasks; the BTF
# paper reports F1, so every run logs macro-F1 too and the tables show it (docs/methods.md, BTF).
MARC = TaskSpec(
    name="marc",
    hub_id="mteb/amazon_reviews_multi",
    languages=("en", "de", "es", "fr", "ja", "zh"),
    text_fields=("text",),
    label_names=("1 star", "2 stars", "3 stars", "4 stars", "5 stars"),
    extra_metrics=("macro_f1",),
    table_metric="macro_f1",
    train_rows=200_000,
)

# PAN-X as XTREME uses it: WikiANN's splits of its 40 languages, entity-level F1 (seqeval).
PANX = TaskSpec(
    name="panx",
    hub_id="unimelb-nlp/wikiann",
    languages=("en", "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id",
               "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta", "te", "th",
               "tl", "tr", "ur", "vi", "yo", "zh"),
    text_fields=("tokens",),
    label_names=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"),
    label_field="ner_tags",
    metric="f1",
    kind="token",
    train_rows=20_000,  # WikiANN English
)

TASKS: dict[str, TaskSpec] = {task.name: task for task in (XNLI, PAWSX, MARC, PANX)}


def get_task(name: str, languages: Sequence[str] = ()) -> TaskSpec:
    """The task ``name``, on ``languages`` only when given (``TaskSpec.restrict``: a sweep's ``--languages``,
    a run's ``TrainConfig.languages``), so the sweep and its trials read one language list."""
    try:
        task = TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None
    return task.restrict(languages) if languages else task


def split_key(split: str, language: str) -> str:
    """Name of one (split, language) part in a task's ``DatasetDict``: ``"test_de"``."""
    return f"{split}_{language}"


def parse_languages(value) -> tuple[str, ...]:
    """A language list as a knob may hold it: ``("de", "ar")``, ``"de,ar"`` or empty (every language)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    return tuple(value or ())
