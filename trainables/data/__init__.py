"""Task data: find it (hub, or a local copy in one of several layouts), normalise it, tokenise it once.

Every source ends up in the same shape — a ``DatasetDict`` with ``train_<source>`` plus
``validation_<lang>`` / ``test_<lang>``, columns ``task.text_fields + (task.label_field,)``,
labels as ``ClassLabel(task.label_names)`` (token tasks: a list of words and a list of
``ClassLabel`` tags) — so nothing downstream knows where the data came from. Other languages'
training splits are only ever loaded without their labels (``load_unlabelled``:
``unlabelled_<lang>``), so zero-shot transfer holds by construction. Tokenised data is cached
on disk by *content*, so every trial of a sweep (and every sweep on the same data and
tokenizer) shares one copy.

The package: ``layouts`` (where the files are), ``normalise`` (reading them into the task's columns),
``accounting`` (rows read, kept and dropped per part, and why), ``hub`` (the hub and its local cache),
``load`` (the entry points), ``cache`` (content keys and the on-disk cache), ``tokenization`` (sub-word
encoding), ``collate`` (batches).
"""

from trainables.data.accounting import UNKNOWN_LABEL_LIMIT, DataAccounting, SplitAccount

from trainables.data.cache import (
    TOKEN_SEGMENTS_VERSION,
    TOKENIZED_FORMAT_VERSION,
    content_cache_key,
    dataset_content_hash,
    load_tokenized,
    publish_cached,
    tokenized_cache_key,
)
from trainables.data.collate import DynamicPaddingCollator, make_collator
from trainables.data.hub import probe_hub
from trainables.data.layouts import EVAL_SPLITS, DataUnavailable, detect_layout
from trainables.data.load import check_data_available, load_raw, load_unlabelled
from trainables.data.normalise import label_lookup
from trainables.data.tokenization import (
    NO_LABEL,
    SENTENCE_ID,
    WORD_POSITION,
    align_labels_to_subwords,
    encode_batch,
    encode_token_batch,
    tokenize_cached,
    tokenized_features,
    word_segments,
)
from trainables.labels import IGNORE_INDEX

__all__ = [
    "UNKNOWN_LABEL_LIMIT", "DataAccounting", "SplitAccount",
    "EVAL_SPLITS", "IGNORE_INDEX", "NO_LABEL", "SENTENCE_ID", "TOKENIZED_FORMAT_VERSION", "TOKEN_SEGMENTS_VERSION",
    "WORD_POSITION", "DataUnavailable",
    "DynamicPaddingCollator", "align_labels_to_subwords", "check_data_available", "content_cache_key",
    "dataset_content_hash", "detect_layout", "encode_batch", "encode_token_batch", "label_lookup", "load_raw", "load_tokenized",
    "load_unlabelled", "make_collator", "probe_hub", "publish_cached", "tokenize_cached", "tokenized_cache_key",
    "tokenized_features", "word_segments",
]
