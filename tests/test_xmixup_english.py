"""X-Mixup's English path (issue 21): English dev and test are scored as (en, en) pairs, so X-Mixup must
train on that input, as the reference code does (every English example paired with itself).

The tiny parallel set has the shape of the issue's data: PAWS-X schema, back-translations that are
copies of the English, and English topics without a translation. Its label is a cue word opening the
second sentence, one cue per topic, so the tiny smoke model learns it within a few dozen steps."""

from __future__ import annotations

import random

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from trainables.data import load_tokenized, tokenize_cached
from trainables.loop import train_and_evaluate
from trainables.methods.xmixup.method import XMixup
from trainables.tasks import get_task
from trainables.methods.xmixup.parallel_cache import parallel_cached
from trainables.methods.xmixup.translations import load_parallel, translation_file

TASK = get_task("pawsx")
# topic -> (its words, the cue word that opens sentence2 of a paraphrase); topic "b" has no translation.
TOPICS = {"a": ("house river garden window table city forest mountain street school market letter".split(), "today"),
          "b": ("dog cat horse bird fish apple bread cheese coffee water stone bridge".split(), "again")}


def _rows(topic: str, n: int, seed: int) -> dict[str, list]:
    words, cue = TOPICS[topic]
    rng = random.Random(f"{topic}-{seed}")
    labels = [i % 2 for i in range(n)]
    return {"sentence1": [" ".join(rng.choices(words, k=4)) for _ in labels],
            "sentence2": [" ".join([cue if label else "often", *rng.choices(words, k=3)]) for label in labels],
            "label": labels}


def _joined(*parts: dict[str, list]) -> dict[str, list]:
    return {key: [value for part in parts for value in part[key]] for key in parts[0]}


def _translated(text: str) -> str:
    """The "target language": every word spelled backwards (a vocabulary English does not share)."""
    return " ".join(word[::-1] for word in text.split())


def _split(columns: dict[str, list], translate: bool = False) -> Dataset:
    features = Features({"sentence1": Value("string"), "sentence2": Value("string"),
                         "label": ClassLabel(names=list(TASK.label_names))})
    if translate:
        columns = {**columns, **{name: [_translated(t) for t in columns[name]] for name in TASK.text_fields}}
    return Dataset.from_dict(columns, features=features)


def _write(root, name: str, lines: list[list[str]]) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(line) + "\n" for line in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def english_only_topics(tmp_path_factory, smoke_model):
    """(task data, paired data): 400 English training rows, of which topic "a" (200) has German
    translate-train rows and topic "b" (200) none; English dev and test hold both topics."""
    root = tmp_path_factory.mktemp("english-only-topics")
    topic_a = _rows("a", 200, 0)
    raw = {"train_en": _split(_joined(topic_a, _rows("b", 200, 0))),
           "validation_en": _split(_joined(_rows("a", 50, 1), _rows("b", 50, 1))),
           "test_en": _split(_joined(_rows("a", 30, 2), _rows("b", 30, 2)))}
    raw.update({f"test_{lang}": _split(_rows("a", 60, 2), translate=True) for lang in TASK.target_languages})
    raw = DatasetDict(raw)
    names = TASK.label_names
    english = list(zip(topic_a["sentence1"], topic_a["sentence2"], topic_a["label"]))
    _write(root, translation_file("train", "de"),
           [[a, b, _translated(a), _translated(b), names[label]] for a, b, label in english])
    _write(root, translation_file("back", "de"), [[a, b, a, b, names[label]] for a, b, label in english])
    for lang in TASK.target_languages:  # translate-test: the original English back
        test = raw[f"test_{lang}"]
        _write(root, translation_file("test", lang),
               [[a, b, _translated(a), _translated(b), names[label]]
                for a, b, label in zip(test["sentence1"], test["sentence2"], test["label"])])
    tokenized = tokenize_cached(raw, TASK, smoke_model, 64, root / "cache")
    paired = parallel_cached(load_parallel(TASK, raw, root, ("de",)), TASK, smoke_model, 64, root / "cache")
    return str(tokenized), str(paired)


def test_xmixup_learns_the_english_dev_pairs_it_is_selected_on(smoke_train_config, english_only_topics):
    """Before the fix X-Mixup trained on the 200 translated pairs only: its English dev stayed at the
    constant prediction's 0.5 for all 100 steps (and so did German), while plain fine-tuning reaches 1.0
    within 30. Trained on the (en, en) pairs too, it learns English dev, English test and German."""
    tokenized, paired = english_only_topics
    cfg = smoke_train_config.replace(task="pawsx", tokenized_path=tokenized, languages=("en", "de"),
                                     method="xmixup", parallel_path=paired, train_languages=("de",), pk=30.0,
                                     max_steps=100, eval_every_steps=20)
    final = train_and_evaluate(cfg, lambda metrics: None)
    assert final["selection_chance"] == 0.5  # 50 + 50 dev rows, half of each label
    assert final["dev_acc"] > 0.9 and final["selection_at_chance"] == 0.0
    assert final["test_acc_en"] > 0.9
    assert final["test_acc_de"] > 0.9  # the translated topic transfers to the target language


def test_english_examples_are_paired_with_themselves(smoke_train_config, english_only_topics):
    """Every English training example (also the 200 without a translation) is one (en, en) pair: its
    own encoding as target, source and back-translation, its own label; ``english_pairs=False`` is the
    former training set, the translate-train pairs alone."""
    tokenized, paired = english_only_topics
    cfg = smoke_train_config.replace(task="pawsx", tokenized_path=tokenized, method="xmixup", parallel_path=paired)
    data = load_tokenized(tokenized)
    rows = XMixup(cfg, TASK).train_dataset(data)
    english = data["train_en"]
    assert len(rows) == 200 + 400 and rows.unique("language") == ["de", "en"]
    pairs = rows.filter(lambda lang: lang == "en", input_columns="language")
    assert pairs["labels"] == english["labels"] and pairs["length"] == english["length"]
    for column in ("input_ids", "attention_mask", "token_type_ids"):
        for prefix in ("", "source_", "backtrans_"):
            assert pairs[prefix + column] == english[column]
    translated = rows.filter(lambda lang: lang == "de", input_columns="language")
    assert translated["source_input_ids"][:200] == english["input_ids"][:200]  # topic "a": the translated half
    assert translated["input_ids"][0] != translated["source_input_ids"][0]
    former = XMixup(cfg.replace(english_pairs=False), TASK).train_dataset(data)
    assert len(former) == 200 and former.unique("language") == ["de"]
