"""X-Mixup's parallel data, tokenised: ``load_parallel``'s raw-text pairs encoded once and cached by content.

Reading XTREME's translation files (``trainables.methods.xmixup.translations``) and tokenising what
was read are separate jobs: the pairs' tokenised copy is keyed by their content, the tokenizer and
``max_length`` (like ``tokenize_cached``, same atomic publish, different key), so it does not depend on
where the files came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import DatasetDict, Features, Value

from trainables.data import content_cache_key, encode_batch, publish_cached, tokenized_features
from trainables.paired import BACK, SOURCE
from trainables.tasks import TaskSpec

PARALLEL_FORMAT_VERSION = "xlt-parallel-v1"
_ENCODINGS = ("input_ids", "attention_mask", "token_type_ids")


def _prefixes(columns: Sequence[str]) -> list[str]:
    return ["", SOURCE] + ([BACK] if any(name.startswith(BACK) for name in columns) else [])


def _encode_pairs(
    batch: dict[str, list],
    *,
    tokenizer: Any,
    text_fields: Sequence[str],
    label_field: str,
    max_length: int,
    prefixes: Sequence[str],
    columns: Sequence[str],
) -> dict[str, list]:
    """Each pair (target, ``source_``, ``backtrans_``) encoded as two texts, truncated, not padded."""
    out: dict[str, list] = {}
    for prefix in prefixes:
        fields = [prefix + name for name in text_fields]
        encoded = encode_batch(
            batch, tokenizer=tokenizer, text_fields=fields, label_field=label_field, max_length=max_length
        )
        out.update({prefix + name: encoded[name] for name in _ENCODINGS if prefix + name in columns})
        if not prefix:
            out["labels"], out["length"] = encoded["labels"], encoded["length"]
    if "language" in columns:
        out["language"] = batch["language"]
    return out


def _parallel_features(tokenizer: Any, prefixes: Sequence[str], with_language: bool) -> Features:
    single = tokenized_features(tokenizer)
    encodings = {prefix + name: single[name] for prefix in prefixes for name in _ENCODINGS if name in single}
    language = {"language": Value("string")} if with_language else {}
    return Features({**encodings, "labels": single["labels"], "length": single["length"], **language})


def _tokenize_parallel(
    raw_parallel: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int, work_dir: Path, key: str
) -> DatasetDict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    out = {}
    for name, ds in raw_parallel.items():
        prefixes = _prefixes(ds.column_names)
        features = _parallel_features(tokenizer, prefixes, "language" in ds.column_names)
        kwargs = {
            "tokenizer": tokenizer,
            "text_fields": task.text_fields,
            "label_field": task.label_field,
            "max_length": max_length,
            "prefixes": prefixes,
            "columns": list(features),
        }
        out[name] = ds.map(
            _encode_pairs,
            batched=True,
            fn_kwargs=kwargs,
            remove_columns=ds.column_names,
            features=features,
            cache_file_name=str(work_dir / f"{name}.arrow"),
            new_fingerprint=f"{key[:16]}-{name}",
            desc=f"tokenize {name}",
        )
    return DatasetDict(out)


def parallel_cache_key(raw_parallel: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int) -> str:
    fields = [task.name, *task.text_fields, task.label_field, str(max_length)]
    return content_cache_key(PARALLEL_FORMAT_VERSION, fields, tokenizer_dir, raw_parallel)


def parallel_cached(
    raw_parallel: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int, cache_dir: str | Path
) -> Path:
    """Tokenise ``load_parallel``'s pairs once per (content, tokenizer, max_length); returns the saved folder
    (under ``cache_dir/tokenized``, like ``tokenize_cached``: same atomic publish, different key)."""
    key = parallel_cache_key(raw_parallel, task, tokenizer_dir, max_length)
    return publish_cached(cache_dir, key, lambda work_dir: _tokenize_parallel(raw_parallel, task, tokenizer_dir,
                                                                               max_length, work_dir, key),
                          task=task, tokenizer_dir=tokenizer_dir, max_length=max_length,
                          data_format=PARALLEL_FORMAT_VERSION)
