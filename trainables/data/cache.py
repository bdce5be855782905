"""Content keys (what tokenised data depends on) and the on-disk cache they address."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import pyarrow as pa
from datasets import Dataset, DatasetDict

from trainables.cache_manifest import damaged_or_absent, intact, usable_entry, write_manifest
from trainables.publish import publish_dir, scratch_dir
from trainables.tasks import TaskSpec

TOKENIZED_FORMAT_VERSION = "xlt-tokenized-v1"
# Token tasks' rows: long sentences split into word-aligned segments with their sentence id (before: cut
# at max_length). In token tasks' keys only, so the sequence tasks' caches stay valid.
TOKEN_SEGMENTS_VERSION = "token-segments-v1"
_TOKENIZER_FILE_PREFIXES = (
    "tokenizer",
    "special_tokens_map",
    "added_tokens",
    "vocab",
    "merges",
    "spiece",
    "sentencepiece",
)


def _tokenizer_files(tokenizer_dir: Path) -> list[Path]:
    if not tokenizer_dir.is_dir():
        raise ValueError(
            f"tokenizer_dir {tokenizer_dir} is not a local folder; resolve hub ids first (e.g. huggingface_hub.snapshot_download)"
        )
    files = sorted(
        path for path in tokenizer_dir.iterdir() if path.is_file() and path.name.startswith(_TOKENIZER_FILE_PREFIXES)
    )
    if not files:
        raise ValueError(f"no tokenizer files (tokenizer.json, vocab.txt, ...) in {tokenizer_dir}")
    return files


def dataset_content_hash(ds: Dataset) -> str:
    """sha256 of a dataset's rows and schema: ``_fingerprint`` depends on cache-file mtimes, so it is not stable across machines."""
    digest = hashlib.sha256()
    for batch in ds.with_format("arrow").iter(batch_size=65_536):
        table = batch.combine_chunks()  # same bytes for the same rows, however the table was chunked
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue())
    digest.update(str(len(ds)).encode())
    return digest.hexdigest()


def content_cache_key(
    format_version: str, fields: Sequence[str], tokenizer_dir: str | Path, parts: DatasetDict
) -> str:
    """sha256 over what tokenised data depends on: format and library versions, ``fields`` (task, columns,
    max_length), the tokenizer files and every part's content."""
    import tokenizers
    import transformers

    digest = hashlib.sha256()
    header = [format_version, transformers.__version__, tokenizers.__version__, *fields]
    digest.update(json.dumps(header).encode())
    for path in _tokenizer_files(Path(tokenizer_dir)):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for name in sorted(parts):
        digest.update(name.encode() + b"\0" + dataset_content_hash(parts[name]).encode())
    return digest.hexdigest()


def tokenized_cache_key(raw: DatasetDict, task: TaskSpec, tokenizer_dir: str | Path, max_length: int) -> str:
    """What the tokenised data depends on: tokenizer files, data content, task kind and fields, max_length,
    code version (the kind: word-aligned labels are another format than one label per example; token tasks
    add ``TOKEN_SEGMENTS_VERSION``)."""
    fields = [task.name, task.kind, *task.text_fields, task.label_field, str(max_length)]
    if task.kind == "token":
        fields.append(TOKEN_SEGMENTS_VERSION)
    return content_cache_key(TOKENIZED_FORMAT_VERSION, fields, tokenizer_dir, raw)


def publish_cached(cache_dir: str | Path, key: str, build: Callable[[Path], DatasetDict], *, task: TaskSpec,
                   tokenizer_dir: str | Path, max_length: int, data_format: str) -> Path:
    """``cache_dir/tokenized/<key[:16]>``, built by ``build(work_dir)`` and saved unless it is there already.

    The folder appears atomically (saved aside, then renamed), so concurrent sweeps either see a
    complete cache or none; when two build it at once, the loser's copy is discarded. Its manifest
    (``trainables.cache_manifest``) is checked on every call: a damaged entry is rebuilt, with one line.
    """
    folder = Path(cache_dir) / "tokenized"
    target = folder / key[:16]
    if usable_entry(target, data_format):
        return target
    meta = {"key": key, "task": task.name, "max_length": max_length, "tokenizer_dir": str(tokenizer_dir),
            "format": data_format}
    with scratch_dir(target) as scratch:
        (scratch / "work").mkdir(parents=True)
        build(scratch / "work").save_to_disk(str(scratch / "data"))
        (scratch / "data" / "xlt_tokenized.json").write_text(json.dumps(meta, indent=1))
        write_manifest(scratch / "data", data_format)
        publish_dir(scratch / "data", target, complete=intact(data_format), stale=damaged_or_absent(data_format))
    return target


def load_tokenized(path: str | Path) -> DatasetDict:
    """The tokenised DatasetDict written by ``tokenize_cached`` (memory-mapped, not copied)."""
    return datasets.load_from_disk(str(path))
