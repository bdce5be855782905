"""Sub-word encoding of a task's parts (token tasks: labels on first sub-words, long sentences in segments), cached
by content."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import DatasetDict, Features, List, Value

from trainables.data.cache import (
    TOKEN_SEGMENTS_VERSION,
    TOKENIZED_FORMAT_VERSION,
    publish_cached,
    tokenized_cache_key,
)
from trainables.labels import IGNORE_INDEX
from trainables.tasks import TaskSpec

NO_LABEL = -1  # a sequence task's label in unlabelled parts (a loss on it fails loudly instead of learning it)
WORD_POSITION = 0  # a token task's label at first sub-words in unlabelled parts: "a word starts here"
SENTENCE_ID = "sentence_id"  # a token task's row: the sentence (row of the raw split) whose segment it holds


def encode_batch(
    batch: dict[str, list], *, tokenizer: Any, text_fields: Sequence[str], label_field: str, max_length: int
) -> dict[str, list]:
    """Tokenise without padding (the collator pads per batch); pairs go in as two texts.

    A part without ``label_field`` (unlabelled text) gets ``NO_LABEL``.
    """
    texts = [batch[name] for name in text_fields]
    encoded = tokenizer(*texts, truncation=True, max_length=max_length)
    out = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}
    out["labels"] = batch[label_field] if label_field in batch else [NO_LABEL] * len(encoded["input_ids"])
    out["length"] = [len(ids) for ids in encoded["input_ids"]]
    return out


def align_labels_to_subwords(word_ids: Sequence[int | None], word_labels: Sequence[int] | None = None) -> list[int]:
    """One label per sub-word: a word's label on its first sub-word, ``IGNORE_INDEX`` on its other
    sub-words and on special tokens (XTREME's convention for NER: one prediction per word).

    ``word_labels`` None (unlabelled text): ``WORD_POSITION`` on first sub-words, so a pseudo-labeller
    knows where the words start. ``word_ids`` is a fast tokenizer's ``encoding.word_ids(row)``.
    """
    out, previous = [], None
    for word in word_ids:
        if word is None or word == previous:
            out.append(IGNORE_INDEX)
        else:
            out.append(WORD_POSITION if word_labels is None else int(word_labels[word]))
        previous = word
    return out


def word_segments(subwords: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` word ranges of a sentence, each of at most ``budget`` sub-words.

    ``subwords[i]`` is word i's sub-word count (each at most ``budget``). Greedy, as XTREME's
    ``utils_preprocess.py`` (``panx_tokenize_preprocess``) splits a long sentence: a word that would
    overflow the current segment starts the next one; words never straddle a boundary. A sentence
    always has at least one segment (an empty one gives ``[(0, 0)]``).
    """
    segments, start, used = [], 0, 0
    for index, count in enumerate(subwords):
        if count > budget:
            raise ValueError(f"word {index} has {count} sub-words, more than a segment's {budget}")
        if used + count > budget:
            segments.append((start, index))
            start, used = index, 0
        used += count
    segments.append((start, len(subwords)))
    return segments


def encode_token_batch(
    batch: dict[str, list], indices: Sequence[int], *, tokenizer: Any, text_fields: Sequence[str], label_field: str,
    max_length: int
) -> dict[str, list]:
    """Tokenise word lists (``is_split_into_words``), unpadded, with the tags moved onto first sub-words.

    A sentence longer than ``max_length`` sub-words becomes several rows: consecutive word-aligned
    segments (``word_segments``), each a sequence of its own with its special tokens, so every word is
    trained on and scored (XTREME's PAN-X preprocessing). ``SENTENCE_ID`` holds each row's sentence (its
    row in the raw split, ``indices``); the evaluation joins a sentence's segments again before scoring.
    A non-empty word the tokenizer turns into nothing (a lone zero-width space), or into more sub-words
    than a segment holds, becomes the unknown token instead, as XTREME does, so that it keeps its tag.
    """
    (field,) = text_fields
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for a word beside the special tokens")
    sentences = batch[field]
    tags = batch[label_field] if label_field in batch else None
    whole = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    segment_words, segment_tags, sentence_ids = [], [], []
    for row, words in enumerate(sentences):
        counts = [0] * len(words)
        for word in whole.word_ids(row):
            counts[word] += 1
        unknown = {index for index, (word, count) in enumerate(zip(words, counts))
                   if word and not 0 < count <= budget}
        words = [tokenizer.unk_token if index in unknown else word for index, word in enumerate(words)]
        counts = [1 if index in unknown else count for index, count in enumerate(counts)]
        for start, stop in word_segments(counts, budget):
            segment_words.append(words[start:stop])
            segment_tags.append(None if tags is None else tags[row][start:stop])
            sentence_ids.append(indices[row])
    encoded = tokenizer(segment_words, is_split_into_words=True, truncation=True, max_length=max_length)
    out = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids") if name in encoded}
    out["labels"] = [align_labels_to_subwords(encoded.word_ids(row), segment_tags[row])
                     for row in range(len(segment_words))]
    lost = [row for row, words in enumerate(segment_words)
            if len({word for word in encoded.word_ids(row) if word is not None}) != sum(1 for word in words if word)]
    if lost:  # cannot happen unless the tokenizer splits a word differently in context: fail, never drop words
        raise ValueError(f"segment {segment_words[lost[0]]!r} lost words to truncation at max_length {max_length}")
    out["length"] = [len(ids) for ids in encoded["input_ids"]]
    out[SENTENCE_ID] = sentence_ids
    return out


def tokenized_features(tokenizer: Any, *, token_labels: bool = False) -> Features:
    columns = {"input_ids": List(Value("int32")), "attention_mask": List(Value("int8"))}
    if "token_type_ids" in tokenizer.model_input_names:
        columns["token_type_ids"] = List(Value("int8"))
    if not token_labels:
        return Features({**columns, "labels": Value("int64"), "length": Value("int32")})
    return Features({**columns, "labels": List(Value("int64")), "length": Value("int32"), SENTENCE_ID: Value("int64")})


def _tokenize_splits(
    raw: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int, work_dir: Path, key: str
) -> DatasetDict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    token_labels = task.kind == "token"
    if token_labels and not tokenizer.is_fast:
        raise ValueError(f"{task.name} needs a fast tokenizer (word alignment); {tokenizer_dir} has no tokenizer.json")
    kwargs = {
        "tokenizer": tokenizer,
        "text_fields": task.text_fields,
        "label_field": task.label_field,
        "max_length": max_length,
    }
    return DatasetDict(
        {
            name: ds.map(
                encode_token_batch if token_labels else encode_batch,
                batched=True,
                with_indices=token_labels,  # a segment's sentence: its row in the raw split
                fn_kwargs=kwargs,
                remove_columns=ds.column_names,
                features=tokenized_features(tokenizer, token_labels=token_labels),
                cache_file_name=str(work_dir / f"{name}.arrow"),  # bounded memory for XNLI's 393k train rows
                new_fingerprint=f"{key[:16]}-{name}",  # we already know what this is; skip hashing the tokenizer
                desc=f"tokenize {name}",
            )
            for name, ds in raw.items()
        }
    )


def tokenize_cached(
    raw: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int, cache_dir: str | Path
) -> Path:
    """Tokenise ``raw`` once per (content, tokenizer, max_length); returns the saved DatasetDict folder.

    ``raw`` may hold ``load_unlabelled`` parts (no label column): their ``labels`` are ``NO_LABEL``
    (sequence tasks) or ``WORD_POSITION`` at first sub-words and ``IGNORE_INDEX`` elsewhere (token tasks).
    Token tasks: a sentence longer than ``max_length`` is split into segments, one row each, with its
    ``SENTENCE_ID`` (``encode_token_batch``).
    """
    key = tokenized_cache_key(raw, task, tokenizer_dir, max_length)
    return publish_cached(cache_dir, key, lambda work_dir: _tokenize_splits(raw, task, tokenizer_dir, max_length,
                                                                             work_dir, key),
                          task=task, tokenizer_dir=tokenizer_dir, max_length=max_length,
                          data_format=TOKENIZED_FORMAT_VERSION + (f"+{TOKEN_SEGMENTS_VERSION}" if task.kind == "token"
                                                                  else ""))
