"""A SALT candidate scan's inputs on the smoke assets, as the scan tests need them: the plan and the training rows."""

from __future__ import annotations

from pathlib import Path


def smoke_scan(task_name: str, languages: tuple[str, ...], rows: int, top_k: int, smoke_root: Path, smoke_model: str):
    """``(plan, train)``: the first ``rows`` English training rows of the task's smoke data, and a scan plan over
    the smoke word lists of ``languages`` (max length 64, ``top_k`` candidates)."""
    from transformers import AutoTokenizer

    from smoke import build_smoke_data, build_smoke_wordlists
    from trainables.data import load_raw
    from trainables.methods.salt.scan import ScanPlan
    from trainables.methods.salt.vocab import WordLists, language_vocab
    from trainables.tasks import get_task

    task = get_task(task_name)
    lists = WordLists(str(build_smoke_wordlists(smoke_root)))
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    vocab = {lang: language_vocab(tokenizer, lang, lists.words(lang)).token_ids for lang in languages}
    train = load_raw(task, str(build_smoke_data(task, smoke_root)), languages=["en"], eval_splits=())["train_en"]
    return ScanPlan(smoke_model, task.text_fields, 64, top_k, vocab, "data", "model"), train.select(range(rows))
