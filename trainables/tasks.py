"""The benchmark tasks: what each one's data looks like and how it is scored.

One ``TaskSpec`` per benchmark. Everything else (loaders, the training loop, the report)
reads the task's languages, text fields and labels from here, so a new benchmark is one
entry in ``TASKS``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """A cross-lingual benchmark in the shape the Hugging Face hub serves it.

    ``text_fields`` are the input columns (one for single-sentence tasks, two for pairs);
    ``label_names`` are in the order of the hub's ``ClassLabel`` (label id = index).
    The source language is the only one whose training split is used (zero-shot transfer).
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

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def target_languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in self.languages if lang != self.source_language)


XNLI = TaskSpec(
    name="xnli",
    hub_id="facebook/xnli",
    languages=("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
    text_fields=("premise", "hypothesis"),
    label_names=("entailment", "neutral", "contradiction"),
)

PAWSX = TaskSpec(
    name="pawsx",
    hub_id="google-research-datasets/paws-x",
    languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
    text_fields=("sentence1", "sentence2"),
    label_names=("different", "paraphrase"),
)

TASKS: dict[str, TaskSpec] = {task.name: task for task in (XNLI, PAWSX)}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None


def split_key(split: str, language: str) -> str:
    """Name of one (split, language) part in a task's ``DatasetDict``: ``"test_de"``."""
    return f"{split}_{language}"
