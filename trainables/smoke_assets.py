"""The offline "smoke" profile: a tiny BERT and synthetic XNLI / PAWS-X / MARC / PAN-X data, built in seconds.

The data is in the tasks' exact schema and on disk in the ``saved`` layout, so the smoke profile
goes through the real loader, tokenizer cache and training loop — only the sizes differ.

Why the synthetic languages look the way they do: results tables should show real, graded
differences. Every language shares one meaning-level word list; English uses it as is, other
languages rewrite a fraction of the words with their own letters (all of them for languages
with another script), and all languages share names and numbers. Labels depend only on the
relation between the two sentences (copied words, a negation word, replaced words), so a
model trained on English learns them and transfers partly — more where more words are shared.
MARC reviews carry their stars in sentiment words of the same list; PAN-X sentences hold
person, organisation and place names in word-list contexts (see ``_panx_example``).

The smoke model's vocabulary is counted on the XNLI and PAWS-X data only (``_VOCAB_TASKS``), so
adding a task changes neither the model nor the existing tasks' results; the newer tasks'
words are mostly the same list's, and the rest splits into characters (all in the vocabulary).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from trainables.tasks import TASKS, TaskSpec

GENERATOR_VERSION = "smoke-data-v3"
MODEL_VERSION = "smoke-model-v3"
DATA_MARKER = ".smoke-data.json"
MODEL_MARKER = ".smoke-model.json"
DEFAULT_SIZES = {"train": 1200, "validation": 150, "test": 150}

_BASE_WORDS = tuple("""
    house river garden window table city forest mountain street school market letter music paper
    teacher doctor farmer child mother father friend neighbor student driver baker singer painter
    dog cat horse bird fish apple bread cheese coffee water stone bridge train boat car road
    morning evening winter summer night island village castle kitchen station office library
    red green blue small large old young quiet happy heavy bright warm cold early late long
    walks reads writes sings paints builds opens closes finds loses buys sells carries visits
    likes watches cooks cleans drives follows helps meets calls sends brings keeps leaves
    near under behind across beside inside toward around before after with above
    quickly slowly often always today again together alone almost really
    """.split())
# On top of the relation between the sentences, the labels carry cues a 2-layer, 64-wide model
# picks up fast (it learns word matching itself only slowly): a cue word opening the second
# sentence, and for NLI's neutral class a sentence about other things (the other half of the
# words). Measured with the smoke profile (batch 32, lr 3e-4..3e-3, linear decay): PAWS-X English
# ~0.97 after 76 steps; XNLI English ~0.66 after 76-228 steps (the vocabulary split is learnt
# first, the negation cue around 400 steps, then ~0.95). A cue transfers to a language as far as
# that language kept the English form of its words, which makes the per-language results differ.
_CUE_WORDS = {
    "contradiction": ("never", "nothing"),
    "different": ("instead", "rather"),
}
# A weaker cue every language shares (like punctuation in real text): the floor of transfer.
_SHARED_CUES = {"contradiction": "!", "neutral": "?", "different": "!"}
_SHARED_CUE_RATE = 0.35
_LABEL_NOISE = 0.05  # some gold labels are wrong, as in the real sets: keeps English off 100 %
_SHARED_TOKENS = tuple(
    "Anna Marco Kenji Leila Omar Sofia Ivan Mei Paris Tokyo Lagos Lima 3 7 12 19 24 42 58 99 2020 1999".split()
)
# Languages written in another script get all their words in a block of that script.
_SCRIPT_BLOCKS = {
    "ar": (0x0621, 26),
    "ur": (0x0621, 26),
    "bg": (0x0430, 32),
    "ru": (0x0430, 32),
    "el": (0x03AC, 35),
    "hi": (0x0905, 53),
    "th": (0x0E01, 46),
    "zh": (0x4E00, 400),
    "ja": (0x3041, 80),
    "ko": (0xAC00, 400),
}
_LATIN = "abcdefghijklmnopqrstuvwxyz"
# The tasks whose data the smoke vocabulary and word lists are counted on (see the module docstring).
_VOCAB_TASKS = ("xnli", "pawsx")

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


@dataclass(frozen=True)
class _Lexicon:
    """One synthetic language: its form of each English word (same meaning, maybe another spelling),
    its letters (English letter -> this language's) and the share of words it respells."""

    forms: dict[str, str]
    letters: dict[str, str] | None = None
    share: float = 0.0

    @property
    def content_words(self) -> list[str]:
        return [self.forms[word] for word in _BASE_WORDS]

    def cue(self, rng: random.Random, label: str) -> str | None:
        words = _CUE_WORDS.get(label)
        return self.forms[rng.choice(words)] if words else None


def _rng(*parts: object) -> random.Random:
    """A generator seeded from a string: stable across processes (unlike hash(), which is salted)."""
    return random.Random(":".join(str(part) for part in parts))


def _letter_map(lang: str, rng: random.Random) -> dict[str, str]:
    if lang in _SCRIPT_BLOCKS:
        start, size = _SCRIPT_BLOCKS[lang]
        letters = rng.sample([chr(start + offset) for offset in range(size)], len(_LATIN))
    else:
        letters = list(_LATIN)
        rng.shuffle(letters)
    return dict(zip(_LATIN, letters))


def _lexicon(lang: str, seed: int) -> _Lexicon:
    """English is the base list; other languages respell a share of the words (all, for other scripts)."""
    english = [*_BASE_WORDS, *(word for words in _CUE_WORDS.values() for word in words)]
    if lang == "en":
        return _Lexicon({word: word for word in english}, dict(zip(_LATIN, _LATIN)), 0.0)
    rng = _rng(GENERATOR_VERSION, seed, "lexicon", lang)
    letters = _letter_map(lang, rng)
    share = 1.0 if lang in _SCRIPT_BLOCKS else rng.uniform(0.35, 0.75)
    taken = set(english)
    forms = {}
    for word in english:
        form = word
        if rng.random() < share:
            form = "".join(letters[char] for char in word)
            while form in taken:  # keep meanings distinct within the language
                form += letters["x"]
        taken.add(form)
        forms[word] = form
    return _Lexicon(forms, letters, share)


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


def _with_cue(rng: random.Random, lexicon: _Lexicon, words: list[str], label: str) -> str:
    """The second sentence as text: the label's cue word first (easy to find), maybe its shared punctuation last."""
    cue = lexicon.cue(rng, label)
    if cue is not None:
        words = list(words)
        words.insert(0, cue)
    mark = _SHARED_CUES[label] if label in _SHARED_CUES and rng.random() < _SHARED_CUE_RATE else "."
    return " ".join(words) + " " + mark


def _replace_some(rng: random.Random, lexicon: _Lexicon, words: list[str], avoid: list[str], share: float) -> list[str]:
    """``words`` with about ``share`` of them swapped for words (or names/numbers) not in ``avoid``."""
    out = list(words)
    fresh_words = iter(rng.sample([w for w in lexicon.content_words if w not in avoid], len(out)))
    fresh_shared = iter(rng.sample([t for t in _SHARED_TOKENS if t not in avoid], 4))
    for index in rng.sample(range(len(out)), max(1, round(len(out) * share))):
        out[index] = next(fresh_shared) if out[index] in _SHARED_TOKENS else next(fresh_words)
    return out


def _nli_example(rng: random.Random, lexicon: _Lexicon, label: str) -> tuple[str, str]:
    """entailment: the hypothesis copies premise words; contradiction: copies them, negated; neutral: a
    sentence about other things (premises use every other word of the list, neutral hypotheses the rest)."""
    words = lexicon.content_words
    premise = _sentence(rng, words[::2])
    if label == "neutral":
        hypothesis = _sentence(rng, words[1::2], exclude=frozenset(premise))
    else:
        hypothesis = _subsequence(rng, premise, rng.randint(min(6, len(premise)), len(premise)))
    return " ".join(premise) + " .", _with_cue(rng, lexicon, hypothesis, label)


def _paws_example(rng: random.Random, lexicon: _Lexicon, label: str) -> tuple[str, str]:
    """paraphrase: the same words in another order; different: reordered with some words swapped for others."""
    first = _sentence(rng, lexicon.content_words)
    cut = rng.randint(1, len(first) - 1)
    second = first[cut:] + first[:cut]
    if label == "different":
        second = _replace_some(rng, lexicon, second, first, 0.3)
    return " ".join(first) + " .", _with_cue(rng, lexicon, second, label)


def _review_example(rng: random.Random, lexicon: _Lexicon, label: str) -> tuple[str]:
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


def _examples(task: TaskSpec, lang: str, split: str, size: int, seed: int) -> dict[str, list]:
    """``size`` rows with exactly balanced labels (in shuffled order), as columns of the task."""
    if task.kind == "token":
        return _token_examples(task, lang, split, size, seed)
    if task.name not in _EXAMPLE_MAKERS:
        raise NotImplementedError(f"no synthetic smoke data for task {task.name!r}")
    rng = _rng(GENERATOR_VERSION, seed, task.name, lang, split)
    lexicon = _lexicon(lang, seed)
    truths = [index % task.num_labels for index in range(size)]
    rng.shuffle(truths)
    rows = [_EXAMPLE_MAKERS[task.name](rng, lexicon, task.label_names[truth]) for truth in truths]
    labels = [_noisy(rng, truth, task.num_labels) for truth in truths]
    texts = {name: [row[index] for row in rows] for index, name in enumerate(task.text_fields)}
    return {**texts, task.label_field: labels}


def _name_forms(lexicon: _Lexicon, lang: str, seed: int) -> dict[str, str]:
    """This language's form of every made-up name and name word (shared names are not in it: kept as is)."""
    letters = lexicon.letters or dict(zip(_LATIN, _LATIN))
    rng = _rng(GENERATOR_VERSION, seed, "names", lang)
    capitals = dict(zip(_CAPITALS, rng.sample(_CAPITALS, len(_CAPITALS))))  # stays within the vocabulary's

    def respell(word: str) -> str:
        return "".join(letters[char] for char in word.lower())

    forms = {}
    for word in (*_SURNAMES, *_PLACES, *_PLACE_NAMES, *_COMPANIES):
        forms[word] = respell(word) if lang in _SCRIPT_BLOCKS else word
    for word in (*_PLACE_WORDS, *_COMPANY_WORDS):
        if lang in _SCRIPT_BLOCKS:
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


def _panx_example(rng: random.Random, lexicon: _Lexicon, names: dict[str, str]) -> tuple[list[str], list[str]]:
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
    rng = _rng(GENERATOR_VERSION, seed, task.name, lang, split)
    lexicon = _lexicon(lang, seed)
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


def _row_texts(task: TaskSpec, rows: dict[str, list]) -> Iterator[str]:
    """Every text of ``_examples``' rows (a token task's words joined by spaces)."""
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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No per-split progress bars: a smoke build saves 66 tiny splits and would flood the log."""
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _publish(scratch: Path, target: Path, marker: str, expected: dict) -> Path:
    """Move a finished build into place atomically; a stale build is moved aside first, a concurrent winner kept."""
    if target.exists() and _read_marker(target / marker) != expected:
        stale = target.with_name(f".stale-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(scratch, target)
    except OSError:
        if _read_marker(target / marker) != expected:
            raise
    return target


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
    if _read_marker(target / DATA_MARKER) == expected:
        return target
    scratch = data_root / f".tmp-{task.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        sizes = {"train": n_train, "validation": n_dev, "test": n_test}
        for lang in task.languages:
            parts = {
                split: Dataset.from_dict(_examples(task, lang, split, size, seed), features=_features(task))
                for split, size in sizes.items()
            }
            with _quiet():
                DatasetDict(parts).save_to_disk(str(scratch / lang))
        (scratch / DATA_MARKER).write_text(json.dumps(expected, sort_keys=True))
        _publish(scratch, target, DATA_MARKER, expected)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _corpus(seed: int) -> Iterator[str]:
    """XNLI's and PAWS-X's default-size smoke data, all languages, one text per (task, language, split, field)."""
    for task in (TASKS[name] for name in _VOCAB_TASKS):
        for lang in task.languages:
            for split, size in DEFAULT_SIZES.items():
                rows = _examples(task, lang, split, size, seed)
                for name in task.text_fields:
                    yield " ".join(rows[name])


_MODEL_CONFIG = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
}
_VOCAB_SIZE = 2000
_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _smoke_vocab(seed: int) -> dict[str, int]:
    """A cased WordPiece vocabulary of the synthetic corpus: every character (alone and as ``##``
    continuation, so nothing is ``[UNK]``), then whole words by frequency up to ``_VOCAB_SIZE``.

    Counted rather than learnt by merges: ``tokenizers``' WordPiece trainer breaks ties in hash-map
    order, and two builds from the same corpus gave different vocabularies. The corpus is split
    with the ``tokenizers`` BERT normaliser and pre-tokeniser, exactly as the tokenizer will split it.
    Ties go by a hash of the word, so the ~10 % of words left out (as characters) are spread
    over scripts instead of being all of the last code points.
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre_tokenizer = BertPreTokenizer()
    spaced: Counter[str] = Counter()
    for text in _corpus(seed):
        spaced.update(normalizer.normalize_str(text).split())
    counts: Counter[str] = Counter()  # the pre-tokeniser splits within space-separated chunks: run it once per chunk
    for chunk, count in spaced.items():
        for word, _ in pre_tokenizer.pre_tokenize_str(chunk):
            counts[word] += count
    alphabet = sorted({char for word in counts for char in word})
    pieces = [*_SPECIAL_TOKENS, *alphabet, *(f"##{char}" for char in alphabet)]
    words = sorted(
        (word for word in counts if len(word) > 1),
        key=lambda word: (-counts[word], hashlib.sha256(word.encode()).hexdigest()),
    )
    return {token: index for index, token in enumerate(pieces + words[: _VOCAB_SIZE - len(pieces)])}


def _smoke_tokenizer(seed: int):
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast(
        vocab=_smoke_vocab(seed), do_lower_case=False, strip_accents=False, tokenize_chinese_chars=True
    )
    tokenizer.model_max_length = _MODEL_CONFIG["max_position_embeddings"]
    return tokenizer


def build_smoke_model(out_root: str | Path, *, seed: int = 0) -> Path:
    """A randomly initialised 2-layer, 64-wide BERT (MLM head) and its tokenizer, in HF format.

    Lives in ``<out_root>/smoke-model/<hash>/`` where the hash covers everything that shapes it,
    so a changed recipe gets a new folder instead of silently reusing an old one.
    """
    import torch
    from transformers import BertConfig, BertForMaskedLM

    recipe = {
        "version": MODEL_VERSION,
        "data": GENERATOR_VERSION,
        "seed": seed,
        "vocab_size": _VOCAB_SIZE,
        "config": _MODEL_CONFIG,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    target = Path(out_root) / "smoke-model" / digest
    if _read_marker(target / MODEL_MARKER) == recipe:
        return target
    scratch = target.parent / f".tmp-{digest}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tokenizer = _smoke_tokenizer(seed)
        tokenizer.save_pretrained(str(scratch))
        torch.manual_seed(seed)
        model = BertForMaskedLM(
            BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **_MODEL_CONFIG)
        )
        model.save_pretrained(str(scratch))
        (scratch / MODEL_MARKER).write_text(json.dumps(recipe, sort_keys=True))
        _publish(scratch, target, MODEL_MARKER, recipe)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def build_smoke_wordlists(out_root: str | Path, *, seed: int = 0) -> Path:
    """Frequency word lists of the synthetic languages (``<lang>.txt``), for SALT's smoke runs.

    The real word lists (wordfreq) do not cover the synthetic languages, so the smoke profile
    passes these instead: each language's word forms, most frequent in its generated text first.
    """
    languages = sorted({lang for task in TASKS.values() for lang in task.languages})
    vocab_tasks = [TASKS[name] for name in _VOCAB_TASKS]
    expected = {"version": GENERATOR_VERSION, "seed": seed, "languages": languages}
    target = Path(out_root) / "smoke-wordlists"
    if _read_marker(target / DATA_MARKER) == expected:
        return target
    scratch = target.parent / f".tmp-wordlists-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        scratch.mkdir(parents=True)
        for lang in languages:
            counts: Counter[str] = Counter()
            # Counted on XNLI / PAWS-X where they have the language (their lists stay as they were),
            # else on the tasks that have it.
            tasks = [task for task in vocab_tasks if lang in task.languages] or [
                task for task in TASKS.values() if lang in task.languages]
            for task in tasks:
                rows = _examples(task, lang, "train", DEFAULT_SIZES["train"], seed)
                counts.update(word for text in _row_texts(task, rows) for word in text.split())
            forms = set(_lexicon(lang, seed).forms.values())
            ranked = sorted(forms, key=lambda word: (-counts[word], word))
            (scratch / f"{lang}.txt").write_text("\n".join(ranked) + "\n", encoding="utf-8")
        (scratch / DATA_MARKER).write_text(json.dumps(expected, sort_keys=True))
        _publish(scratch, target, DATA_MARKER, expected)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


TRANSLATIONS_VERSION = "smoke-translations-v1"
_MT_NOISE = 0.05  # share of words the synthetic "MT system" drops or swaps with the next one


def _machine_translate(text: str, mapping: dict[str, str], rng: random.Random) -> str:
    """Word for word through ``mapping`` (unknown words such as names, numbers, punctuation kept),
    with a little noise so a translation is not an exact inverse of its source."""
    words = [mapping.get(word, word) for word in text.split()]
    out: list[str] = []
    index = 0
    while index < len(words):
        draw = rng.random()
        if draw < _MT_NOISE / 2:
            index += 1  # dropped
        elif draw < _MT_NOISE and index + 1 < len(words):
            out += [words[index + 1], words[index]]
            index += 2
        else:
            out.append(words[index])
            index += 1
    return " ".join(out)


def _write_tsv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


def build_smoke_translations(task: TaskSpec, out_root: str | Path, *, seed: int = 0) -> Path:
    """X-Mixup's translation files for the smoke data, in XTREME's layout (``trainables.xmixup.translations``).

    Consistent with ``build_smoke_data(task, out_root, seed=seed)`` at default sizes: translate-train
    holds the English train rows in order, translate-test/dev one row per test/validation row.
    Translations go word for word through the synthetic lexicons, with some dropped or swapped
    words; back-translations go on from translate-train's output back to English with fresh noise.
    Returns ``<out_root>/smoke-translations/<XNLI|PAWSX>``.
    """
    from trainables.xmixup.translations import translation_file, xtreme_folder

    base = Path(out_root) / "smoke-translations"
    target = base / xtreme_folder(task)
    expected = {
        "version": GENERATOR_VERSION,
        "translations": TRANSLATIONS_VERSION,
        "task": task.name,
        "sizes": DEFAULT_SIZES,
        "seed": seed,
    }
    if _read_marker(target / DATA_MARKER) == expected:
        return target
    scratch = base / f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fields, names = task.text_fields, task.label_names
    try:
        english = _examples(task, task.source_language, "train", DEFAULT_SIZES["train"], seed)
        for lang in task.target_languages:
            forms = _lexicon(lang, seed).forms
            inverse = {form: word for word, form in forms.items()}
            train, back = [], []
            for index, label in enumerate(english[task.label_field]):
                source = [english[name][index] for name in fields]
                rng = _rng(TRANSLATIONS_VERSION, seed, task.name, lang, "train", index)
                translated = [_machine_translate(text, forms, rng) for text in source]
                returned = [_machine_translate(text, inverse, rng) for text in translated]
                train.append([*source, *translated, names[label]])
                back.append([*source, *returned, names[label]])
            _write_tsv(scratch / translation_file("train", lang), train)
            _write_tsv(scratch / translation_file("back", lang), back)
            for split in ("test", "validation"):
                rows = _examples(task, lang, split, DEFAULT_SIZES[split], seed)
                lines = []
                for index, label in enumerate(rows[task.label_field]):
                    original = [rows[name][index] for name in fields]
                    rng = _rng(TRANSLATIONS_VERSION, seed, task.name, lang, split, index)
                    in_english = [_machine_translate(text, inverse, rng) for text in original]
                    lines.append([*original, *in_english, names[label]])
                _write_tsv(scratch / translation_file(split, lang), lines)
        (scratch / DATA_MARKER).write_text(json.dumps(expected, sort_keys=True))
        _publish(scratch, target, DATA_MARKER, expected)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
