"""The smoke model: a tiny BERT with a WordPiece vocabulary counted on the synthetic data; SALT's word lists."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from smoke.benchmarks import examples, row_texts
from smoke.builds import (
    DATA_MARKER,
    DEFAULT_SIZES,
    GENERATOR_VERSION,
    MODEL_MARKER,
    MODEL_VERSION,
    is_built,
    publish_build,
)
from smoke.lexicon import VOCAB_TASKS, language_lexicon
from trainables.publish import scratch_dir
from trainables.tasks import TASKS


def _corpus(seed: int) -> Iterator[str]:
    """XNLI's and PAWS-X's default-size smoke data, all languages, one text per (task, language, split, field)."""
    for task in (TASKS[name] for name in VOCAB_TASKS):
        for lang in task.languages:
            for split, size in DEFAULT_SIZES.items():
                rows = examples(task, lang, split, size, seed)
                for name in task.text_fields:
                    yield " ".join(rows[name])


MODEL_CONFIG = {  # the tiny BERT's size (also what the cost estimate looks up)
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
}
_VOCAB_SIZE = 2000
_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def smoke_vocab(seed: int) -> dict[str, int]:
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
        vocab=smoke_vocab(seed), do_lower_case=False, strip_accents=False, tokenize_chinese_chars=True
    )
    tokenizer.model_max_length = MODEL_CONFIG["max_position_embeddings"]
    return tokenizer


def build_smoke_model(out_root: str | Path, *, seed: int = 0) -> Path:
    """A randomly initialised 2-layer, 64-wide BERT (MLM head) and its tokenizer, in HF format.

    Lives in ``<out_root>/smoke-model/<hash>/`` where the hash covers everything that shapes it,
    so a changed recipe gets a new folder instead of silently reusing an old one.
    """
    recipe = {
        "version": MODEL_VERSION,
        "data": GENERATOR_VERSION,
        "seed": seed,
        "vocab_size": _VOCAB_SIZE,
        "config": MODEL_CONFIG,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    target = Path(out_root) / "smoke-model" / digest
    if is_built(target, MODEL_MARKER, recipe):
        return target  # without importing torch and the BERT classes: seconds of every later sweep's start
    import torch
    from transformers import BertConfig, BertForMaskedLM

    with scratch_dir(target) as scratch:
        tokenizer = _smoke_tokenizer(seed)
        tokenizer.save_pretrained(str(scratch))
        torch.manual_seed(seed)
        model = BertForMaskedLM(
            BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **MODEL_CONFIG)
        )
        model.save_pretrained(str(scratch))
        (scratch / MODEL_MARKER).write_text(json.dumps(recipe, sort_keys=True))
        publish_build(scratch, target, MODEL_MARKER, recipe)
    return target


def build_smoke_wordlists(out_root: str | Path, *, seed: int = 0) -> Path:
    """Frequency word lists of the synthetic languages (``<lang>.txt``), for SALT's smoke runs.

    The real word lists (wordfreq) do not cover the synthetic languages, so the smoke profile
    passes these instead: each language's word forms, most frequent in its generated text first.
    """
    languages = sorted({lang for task in TASKS.values() for lang in task.languages})
    vocab_tasks = [TASKS[name] for name in VOCAB_TASKS]
    expected = {"version": GENERATOR_VERSION, "seed": seed, "languages": languages}
    target = Path(out_root) / "smoke-wordlists"
    if is_built(target, DATA_MARKER, expected):
        return target
    with scratch_dir(target, "wordlists") as scratch:
        scratch.mkdir(parents=True)
        for lang in languages:
            counts: Counter[str] = Counter()
            # Counted on XNLI / PAWS-X where they have the language (their lists stay as they were),
            # else on the tasks that have it.
            tasks = [task for task in vocab_tasks if lang in task.languages] or [
                task for task in TASKS.values() if lang in task.languages]
            for task in tasks:
                rows = examples(task, lang, "train", DEFAULT_SIZES["train"], seed)
                counts.update(word for text in row_texts(task, rows) for word in text.split())
            forms = set(language_lexicon(lang, seed).forms.values())
            ranked = sorted(forms, key=lambda word: (-counts[word], word))
            (scratch / f"{lang}.txt").write_text("\n".join(ranked) + "\n", encoding="utf-8")
        (scratch / DATA_MARKER).write_text(json.dumps(expected, sort_keys=True))
        publish_build(scratch, target, DATA_MARKER, expected)
    return target


