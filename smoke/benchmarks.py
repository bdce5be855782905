"""Synthetic XNLI / PAWS-X / MARC / PAN-X data in the tasks' exact schema, saved in the ``saved`` layout."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from smoke.builds import (
    DATA_MARKER,
    DEFAULT_SIZES,
    GENERATOR_VERSION,
    is_built,
    publish_build,
    quiet_progress,
)
from smoke.lexicon import LATIN, SCRIPT_BLOCKS, Lexicon, language_lexicon, seeded_rng
from trainables.publish import scratch_dir
from trainables.tasks import TaskSpec

# A weaker cue every language shares (like punctuation in real text): the floor of transfer.
_SHARED_CUES = {"contradiction": "!", "neutral": "?", "different": "!"}
_SHARED_CUE_RATE = 0.35
_LABEL_NOISE = 0.05  # some gold labels are wrong, as in the real sets: keeps English off 100 %
_SHARED_TOKENS = tuple(
    "Anna Marco Kenji Leila Omar Sofia Ivan Mei Paris Tokyo Lagos Lima 3 7 12 19 24 42 58 99 2020 1999".split()
)

# MARC: each star rating has its sentiment words (opening the review's title), and a neighbouring
# rating's word sometimes appears in the body too (mixed feelings); the extremes and the middle
# also get a shared punctuation cue at ``_SHARED_CUE_RATE``.
_STAR_WORDS = {
    "1 star": ("cold", "heavy"),
    "2 stars": ("late", "slowly"),
    "3 stars": ("almost", "quiet"),
    "4 stars": ("warm", "bright"),
    "5 stars": ("happy", "really"),
}
_STAR_MARKS = {"1 star": "!", "3 stars": "?", "5 stars": "!"}
_MIXED_FEELINGS = 0.25

# PAN-X: a name's first letter tells its tag in English (a 2-layer model learns that within the
# smoke run's ~100 steps; real names carry such regularities too): PER = a shared first name, then
# K/O surnames; LOC = a shared city, an L/M place, or Lake/Mount and P places; ORG = A/S companies,
# then T/I company words. Shared first names and cities are the same in every language (like
# _SHARED_TOKENS); surnames and places and company names are kept by Latin-script languages and
# transliterated (lowercase, in the script) by the others; the common words (Lake, Trust) are
# respelled like any word, capital included, so transfer falls with a language's share of respelled
# words. Only capitals and letters the smoke vocabulary has are used (AIKLMOPST; no j, x, z).
_FIRST_NAMES = ("Anna", "Marco", "Kenji", "Leila", "Omar", "Sofia", "Ivan", "Mei")
_SURNAMES = ("Kowalski", "Okoro", "Kimura", "Okafor", "Kovac", "Olsen", "Kaur", "Ortega")
_CITIES = ("Paris", "Tokyo", "Lagos", "Lima")
_PLACES = ("Lindholm", "Montero", "Mossa", "Lorvik", "Malden", "Lunara")
_PLACE_WORDS = ("Lake", "Mount")
_PLACE_NAMES = ("Pelora", "Parvis", "Pomona", "Pirano", "Palmera")
_COMPANIES = ("Atlas", "Solmar", "Arcadia", "Sentry", "Aurora", "Stellar")
_COMPANY_WORDS = ("Trust", "Industries", "Telecom", "Insurance", "Tools")
_CAPITALS = "AIKLMOPST"
# Words that often come before an entity of each type: context a model can learn, respelled per language.
_ENTITY_CONTEXT = {
    "PER": ("meets", "helps", "follows"),
    "ORG": ("buys", "sells", "calls"),
    "LOC": ("near", "toward", "across", "inside"),
}
_CONTEXT_RATE = 0.6
_SPAN_LENGTHS = (1, 2, 3)
_SPAN_WEIGHTS = (0.5, 0.35, 0.15)


def _sentence(rng: random.Random, vocabulary: list[str], exclude: frozenset[str] = frozenset()) -> list[str]:
    """6–20 words: distinct words of ``vocabulary`` plus one or two shared names/numbers not in ``exclude``."""
    length = rng.randint(6, 20)
    n_shared = rng.randint(1, 2)
    content = rng.sample(vocabulary, length - n_shared)
    shared = rng.sample([token for token in _SHARED_TOKENS if token not in exclude], n_shared)
    words = content + shared
    rng.shuffle(words)
    return words


def _subsequence(rng: random.Random, words: list[str], size: int) -> list[str]:
    keep = sorted(rng.sample(range(len(words)), size))
    return [words[index] for index in keep]


def _with_cue(rng: random.Random, lexicon: Lexicon, words: list[str], label: str) -> str:
    """The second sentence as text: the label's cue word first (easy to find), maybe its shared punctuation last."""
    cue = lexicon.cue(rng, label)
    if cue is not None:
        words = list(words)
        words.insert(0, cue)
    mark = _SHARED_CUES[label] if label in _SHARED_CUES and rng.random() < _SHARED_CUE_RATE else "."
    return " ".join(words) + " " + mark


def _replace_some(rng: random.Random, lexicon: Lexicon, words: list[str], avoid: list[str], share: float) -> list[str]:
    """``words`` with about ``share`` of them swapped for words (or names/numbers) not in ``avoid``."""
    out = list(words)
    fresh_words = iter(rng.sample([w for w in lexicon.content_words if w not in avoid], len(out)))
    fresh_shared = iter(rng.sample([t for t in _SHARED_TOKENS if t not in avoid], 4))
    for index in rng.sample(range(len(out)), max(1, round(len(out) * share))):
        out[index] = next(fresh_shared) if out[index] in _SHARED_TOKENS else next(fresh_words)
    return out


def _nli_example(rng: random.Random, lexicon: Lexicon, label: str) -> tuple[str, str]:
    """entailment: the hypothesis copies premise words; contradiction: copies them, negated; neutral: a
    sentence about other things (premises use every other word of the list, neutral hypotheses the rest)."""
    words = lexicon.content_words
    premise = _sentence(rng, words[::2])
    if label == "neutral":
        hypothesis = _sentence(rng, words[1::2], exclude=frozenset(premise))
    else:
        hypothesis = _subsequence(rng, premise, rng.randint(min(6, len(premise)), len(premise)))
    return " ".join(premise) + " .", _with_cue(rng, lexicon, hypothesis, label)


def _paws_example(rng: random.Random, lexicon: Lexicon, label: str) -> tuple[str, str]:
    """paraphrase: the same words in another order; different: reordered with some words swapped for others."""
    first = _sentence(rng, lexicon.content_words)
    cut = rng.randint(1, len(first) - 1)
    second = first[cut:] + first[:cut]
    if label == "different":
        second = _replace_some(rng, lexicon, second, first, 0.3)
    return " ".join(first) + " .", _with_cue(rng, lexicon, second, label)


def _review_example(rng: random.Random, lexicon: Lexicon, label: str) -> tuple[str]:
    """A title opened by the rating's sentiment word, a blank line, a body (maybe with a neighbouring
    rating's word) ending in the rating's shared mark or a full stop; the hub's ``text`` is title + body."""
    ratings = list(_STAR_WORDS)
    sentiment = {lexicon.forms[word] for words in _STAR_WORDS.values() for word in words}
    neutral = [word for word in lexicon.content_words if word not in sentiment]
    title = [lexicon.forms[rng.choice(_STAR_WORDS[label])], *rng.sample(neutral, rng.randint(1, 3))]
    body = _sentence(rng, neutral)
    if rng.random() < _MIXED_FEELINGS:
        index = ratings.index(label)
        neighbour = ratings[rng.choice([i for i in (index - 1, index + 1) if 0 <= i < len(ratings)])]
        body.insert(rng.randint(0, len(body)), lexicon.forms[rng.choice(_STAR_WORDS[neighbour])])
    mark = _STAR_MARKS[label] if label in _STAR_MARKS and rng.random() < _SHARED_CUE_RATE else "."
    return (" ".join(title) + "\n\n" + " ".join(body) + " " + mark,)


_EXAMPLE_MAKERS = {"xnli": _nli_example, "pawsx": _paws_example, "marc": _review_example}
# Splits that are translations of the English split, row for row, as in the real benchmark: XNLI's dev and
# test sets are the same 7,500 English pairs translated into the 14 other languages, labels carried over
# (SALT's generalized setting pairs premise and hypothesis of one row across languages, trainables.generalized).
PARALLEL_SPLITS = {"xnli": ("validation", "test")}


def examples(task: TaskSpec, lang: str, split: str, size: int, seed: int) -> dict[str, list]:
    """``size`` rows with exactly balanced labels (in shuffled order), as columns of the task.

    A ``PARALLEL_SPLITS`` split of a target language is the English split translated word for word
    through the language's lexicon (names, numbers and punctuation kept): row i in every language is
    one example, with one gold label. Its words are drawn as the language's own would be (the same
    lists, respelled), so only which sentences appear changes, not how they look."""
    if task.kind == "token":
        return _token_examples(task, lang, split, size, seed)
    if lang != task.source_language and split in PARALLEL_SPLITS.get(task.name, ()):
        return _translated(task, examples(task, task.source_language, split, size, seed), lang, seed)
    if task.name not in _EXAMPLE_MAKERS:
        raise NotImplementedError(f"no synthetic smoke data for task {task.name!r}")
    rng = seeded_rng(GENERATOR_VERSION, seed, task.name, lang, split)
    lexicon = language_lexicon(lang, seed)
    truths = [index % task.num_labels for index in range(size)]
    rng.shuffle(truths)
    rows = [_EXAMPLE_MAKERS[task.name](rng, lexicon, task.label_names[truth]) for truth in truths]
    labels = [_noisy(rng, truth, task.num_labels) for truth in truths]
    texts = {name: [row[index] for row in rows] for index, name in enumerate(task.text_fields)}
    return {**texts, task.label_field: labels}


def _translated(task: TaskSpec, english: dict[str, list], lang: str, seed: int) -> dict[str, list]:
    """``english``'s rows in ``lang``: each word through the lexicon (words it lacks kept), labels as they are."""
    forms = language_lexicon(lang, seed).forms
    texts = {name: [" ".join(forms.get(word, word) for word in text.split(" ")) for text in english[name]]
             for name in task.text_fields}
    return {**texts, task.label_field: list(english[task.label_field])}


def _name_forms(lexicon: Lexicon, lang: str, seed: int) -> dict[str, str]:
    """This language's form of every made-up name and name word (shared names are not in it: kept as is)."""
    letters = lexicon.letters or dict(zip(LATIN, LATIN))
    rng = seeded_rng(GENERATOR_VERSION, seed, "names", lang)
    capitals = dict(zip(_CAPITALS, rng.sample(_CAPITALS, len(_CAPITALS))))  # stays within the vocabulary's

    def respell(word: str) -> str:
        return "".join(letters[char] for char in word.lower())

    forms = {}
    for word in (*_SURNAMES, *_PLACES, *_PLACE_NAMES, *_COMPANIES):
        forms[word] = respell(word) if lang in SCRIPT_BLOCKS else word
    for word in (*_PLACE_WORDS, *_COMPANY_WORDS):
        if lang in SCRIPT_BLOCKS:
            forms[word] = respell(word)
        else:
            forms[word] = capitals[word[0]] + respell(word[1:]) if rng.random() < lexicon.share else word
    return forms


def _entity(rng: random.Random, kind: str, names: dict[str, str]) -> list[str]:
    """One PER / ORG / LOC name of 1-3 words in this language."""
    length = rng.choices(_SPAN_LENGTHS, _SPAN_WEIGHTS)[0]
    if kind == "PER":
        return [rng.choice(_FIRST_NAMES), *(names[word] for word in rng.sample(_SURNAMES, length - 1))]
    if kind == "ORG":
        return [names[rng.choice(_COMPANIES)], *(names[word] for word in rng.sample(_COMPANY_WORDS, length - 1))]
    if length == 1:
        return [rng.choice(_CITIES) if rng.random() < 0.4 else names[rng.choice(_PLACES)]]
    return [names[rng.choice(_PLACE_WORDS)], *(names[word] for word in rng.sample(_PLACE_NAMES, length - 1))]


def _panx_example(rng: random.Random, lexicon: Lexicon, names: dict[str, str]) -> tuple[list[str], list[str]]:
    """4-12 context words with 1-3 entities placed among them (often after a word typical of their type),
    maybe a shared number, a full stop; IOB2 tags, an entity's type sometimes wrong (label noise)."""
    cues = {lexicon.forms[word] for words in _ENTITY_CONTEXT.values() for word in words}
    context = rng.sample([word for word in lexicon.content_words if word not in cues], rng.randint(4, 12))
    segments: list[tuple[list[str], str]] = [([word], "O") for word in context]
    if rng.random() < 0.3:
        segments.insert(rng.randint(0, len(segments)), ([rng.choice(_SHARED_TOKENS[-10:])], "O"))
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(list(_ENTITY_CONTEXT))
        tagged = kind if rng.random() >= _LABEL_NOISE else rng.choice([k for k in _ENTITY_CONTEXT if k != kind])
        entity = [(_entity(rng, kind, names), tagged)]
        if rng.random() < _CONTEXT_RATE:
            entity.insert(0, ([lexicon.forms[rng.choice(_ENTITY_CONTEXT[kind])]], "O"))
        position = rng.randint(0, len(segments))
        segments[position:position] = entity
    tokens, tags = [], []
    for words, kind in segments + [(["."], "O")]:
        tokens += words
        tags += ["O"] * len(words) if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
    return tokens, tags


def _token_examples(task: TaskSpec, lang: str, split: str, size: int, seed: int) -> dict[str, list]:
    """``size`` PAN-X sentences in WikiANN's columns: ``tokens``, ``ner_tags`` ids, ``langs``, ``spans``."""
    rng = seeded_rng(GENERATOR_VERSION, seed, task.name, lang, split)
    lexicon = language_lexicon(lang, seed)
    names = _name_forms(lexicon, lang, seed)
    ids = {name: index for index, name in enumerate(task.label_names)}
    rows = [_panx_example(rng, lexicon, names) for _ in range(size)]
    (field,) = task.text_fields
    return {
        field: [tokens for tokens, _ in rows],
        task.label_field: [[ids[tag] for tag in tags] for _, tags in rows],
        "langs": [[lang] * len(tokens) for tokens, _ in rows],
        "spans": [_spans(tokens, tags) for tokens, tags in rows],
    }


def _spans(tokens: list[str], tags: list[str]) -> list[str]:
    """WikiANN's ``spans`` column: ``"PER: Anna Kowalski"`` per entity."""
    spans: list[str] = []
    for token, tag in zip(tokens, tags):
        if tag.startswith("B-"):
            spans.append(f"{tag[2:]}: {token}")
        elif tag.startswith("I-"):
            spans[-1] += f" {token}"
    return spans


def row_texts(task: TaskSpec, rows: dict[str, list]) -> Iterator[str]:
    """Every text of ``examples``' rows (a token task's words joined by spaces)."""
    for name in task.text_fields:
        for text in rows[name]:
            yield " ".join(text) if task.kind == "token" else text


def _noisy(rng: random.Random, truth: int, num_labels: int) -> int:
    if rng.random() >= _LABEL_NOISE:
        return truth
    return rng.choice([label for label in range(num_labels) if label != truth])


def _features(task: TaskSpec) -> Features:
    if task.kind == "token":  # WikiANN's schema
        (field,) = task.text_fields
        return Features(
            {
                field: List(Value("string")),
                task.label_field: List(ClassLabel(names=list(task.label_names))),
                "langs": List(Value("string")),
                "spans": List(Value("string")),
            }
        )
    return Features(
        {
            **{name: Value("string") for name in task.text_fields},
            task.label_field: ClassLabel(names=list(task.label_names)),
        }
    )


def build_smoke_data(
    task: TaskSpec,
    out_root: str | Path,
    *,
    n_train: int = DEFAULT_SIZES["train"],
    n_dev: int = DEFAULT_SIZES["validation"],
    n_test: int = DEFAULT_SIZES["test"],
    seed: int = 0,
) -> Path:
    """Synthetic data for every language of ``task`` under ``<out_root>/smoke-data/<task>/<lang>/``.

    Returns ``<out_root>/smoke-data/<task>``, a ``data_dir`` for ``load_raw`` (its parent works
    too: the loader looks in ``<data_dir>/<task>/`` first). Rebuilt only when the generator
    version, sizes or seed change.
    """
    task = task.benchmark  # always every language: the copy is cached by task name, whatever --languages a sweep ran
    data_root = Path(out_root) / "smoke-data"
    target = data_root / task.name
    expected = {
        "version": GENERATOR_VERSION,
        "task": task.name,
        "n_train": n_train,
        "n_dev": n_dev,
        "n_test": n_test,
        "seed": seed,
    }
    if is_built(target, DATA_MARKER, expected):
        return target
    with scratch_dir(target) as scratch:
        sizes = {"train": n_train, "validation": n_dev, "test": n_test}
        for lang in task.languages:
            parts = {
                split: Dataset.from_dict(examples(task, lang, split, size, seed), features=_features(task))
                for split, size in sizes.items()
            }
            with quiet_progress():
                DatasetDict(parts).save_to_disk(str(scratch / lang))
        (scratch / DATA_MARKER).write_text(json.dumps(expected, sort_keys=True))
        publish_build(scratch, target, DATA_MARKER, expected)
    return target


