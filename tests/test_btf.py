"""BTF's MLM stage: the cache key, the step-seeded batches and loss, and real Ray Train jobs on the tiny model."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

import trainables.task_fitting.mlm as btf_mlm
from trainables.cache_manifest import write_manifest
from trainables.task_fitting.mlm import (BtfFailed, BtfPlan, BtfSettings, btf_cache_path, build_corpus, checkpoint_dir,
                                         covering_plan, is_cached, make_plan, run_btf_cached)
from trainables.task_fitting.worker import (TRAINING_STATE, BatchOrder, MaskedLmLoss, MlmBatches, masked_targets, shard,
                                   split_mlm)

_WORDS = "house river garden window table city forest mountain street school market letter music paper".split()


def _texts(seed: int = 0, per_language: int = 100) -> dict[str, list[str]]:
    """Two "languages": English words and the same words reversed, 5-12 words a sentence."""
    rng = random.Random(seed)
    english = [" ".join(rng.choices(_WORDS, k=rng.randint(5, 12))) for _ in range(per_language)]
    other = [" ".join(word[::-1] for word in rng.choices(_WORDS, k=rng.randint(5, 12))) for _ in range(per_language)]
    return {"en": english, "xx": other}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, str]:
    return build_corpus(_texts(), tmp_path_factory.mktemp("btf-corpus"))


SETTINGS = BtfSettings(learning_rate=1e-3, batch_size=8, max_length=32, seed=3)


# -- the plan, its key and the corpus -------------------------------------------------------------

def test_key_depends_on_content_steps_and_settings_only(smoke_model, corpus, tmp_path):
    path, digest = corpus
    plan = make_plan(smoke_model, path, digest, ("en", "xx"), (10, 5), SETTINGS)
    assert plan.steps == (5, 10)
    same = [
        BtfPlan("/elsewhere/model", "/elsewhere/corpus", digest, plan.model_digest, ("xx", "en"), (5, 10, 5), SETTINGS),
        dataclasses.replace(plan, settings=BtfSettings(**dataclasses.asdict(SETTINGS))),
    ]
    assert {p.key for p in same} == {plan.key}
    changed = [
        dataclasses.replace(plan, steps=(5,)),
        dataclasses.replace(plan, steps=(5, 10, 20)),
        dataclasses.replace(plan, corpus_digest="0" * 64),
        dataclasses.replace(plan, model_digest="0" * 64),
        dataclasses.replace(plan, languages=("en", "de")),
        *(dataclasses.replace(plan, settings=dataclasses.replace(SETTINGS, **{name: value}))
          for name, value in [("learning_rate", 2e-3), ("batch_size", 16), ("max_length", 64),
                              ("mlm_probability", 0.2), ("warmup_steps", 2), ("seed", 4), ("weight_decay", 0.0),
                              ("max_grad_norm", 0.0), ("bf16", False)]),
    ]
    keys = [p.key for p in changed]
    assert plan.key not in keys and len(set(keys)) == len(keys)
    assert btf_cache_path(plan, tmp_path) == tmp_path / "btf" / plan.key[:16]
    assert checkpoint_dir(tmp_path, 5) == tmp_path / "step-5"
    assert not is_cached(plan, tmp_path)


def test_corpus_is_a_shuffled_text_dataset_whatever_the_language_order(corpus, tmp_path):
    import datasets

    texts = _texts()
    path, digest = corpus
    swapped_path, swapped = build_corpus({"xx": texts["xx"], "en": texts["en"]}, tmp_path)
    assert swapped == digest and swapped_path.name == path.name  # content-addressed folder
    loaded = datasets.load_from_disk(str(path))
    assert loaded.column_names == ["text"] and len(loaded) == 200
    assert sorted(loaded["text"]) == sorted(texts["en"] + texts["xx"])
    assert loaded["text"][:100] != texts["en"]  # mixed, not one language after the other
    assert build_corpus(texts, tmp_path, seed=1)[1] != digest
    with pytest.raises(ValueError, match="strings"):
        build_corpus({"en": [["a", "token", "list"]]}, tmp_path)


@pytest.mark.parametrize("bad", [dict(learning_rate=0.0), dict(batch_size=0), dict(mlm_probability=1.0),
                                 dict(warmup_steps=-1), dict(max_length=2)])
def test_settings_are_validated_with_one_line(smoke_model, corpus, bad):
    with pytest.raises(ValueError, match="^BTF settings: [^\n]+$"):
        make_plan(smoke_model, *corpus, ("en",), (5,), BtfSettings(**bad))
    with pytest.raises(ValueError, match="positive"):
        make_plan(smoke_model, *corpus, ("en",), (0, 5))


# -- batches and loss -----------------------------------------------------------------------------

def test_batch_order_walks_seeded_epoch_permutations_end_to_end():
    order = BatchOrder(rows=10, batch_size=4, seed=7)
    stream = np.concatenate([order.indices(step) for step in range(5)])  # 20 rows: exactly two epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:])  # a new permutation each epoch
    late = BatchOrder(rows=10, batch_size=4, seed=7)
    assert np.array_equal(late.indices(3), order.indices(3))  # a step's rows do not depend on the steps before
    assert not np.array_equal(BatchOrder(10, 4, seed=8).indices(0), order.indices(0))


def test_masking_is_per_step_and_independent_of_the_number_of_workers(smoke_model, corpus, tmp_path):
    plan = make_plan(smoke_model, *corpus, ("en", "xx"), (5,), SETTINGS)
    btf_mlm.tokenize_corpus(plan, tmp_path / "tokens.arrow")
    from datasets import Dataset

    tokens = Dataset.from_file(str(tmp_path / "tokens.arrow"))
    tokenizer = AutoTokenizer.from_pretrained(smoke_model)
    batches = MlmBatches(tokens, tokenizer, 8, 0.15, seed=3)
    step4 = batches(4)
    again = MlmBatches(tokens, tokenizer, 8, 0.15, seed=3)(4)  # a fresh process resuming at step 4
    assert all(torch.equal(step4[k], again[k]) for k in step4)
    assert (step4["labels"] != -100).any()
    halves = [shard(step4, rank, 2) for rank in range(2)]
    for rank, half in enumerate(halves):
        rows = slice(4 * rank, 4 * rank + 4)
        width = half["input_ids"].shape[1]
        assert torch.equal(half["input_ids"], step4["input_ids"][rows, :width])
        assert torch.equal(half["labels"], step4["labels"][rows, :width])
        assert not step4["attention_mask"][rows, width:].any()  # only padding was cut
    assert max(h["input_ids"].shape[1] for h in halves) == step4["input_ids"].shape[1]


def test_masked_only_head_gives_the_models_own_loss(smoke_model):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(0)
    tiny_xlmr = XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                                       num_attention_heads=4, intermediate_size=64)).eval()
    for model in (AutoModelForMaskedLM.from_pretrained(smoke_model).eval(), tiny_xlmr):
        assert all(part is not None for part in split_mlm(model))
        ids = torch.randint(5, 50, (3, 9))
        mask = torch.ones_like(ids)
        mask[1, 6:] = 0
        labels = torch.full_like(ids, -100)
        labels[0, 2], labels[1, 4], labels[2, 7] = ids[0, 2], ids[1, 4], ids[2, 7]
        with torch.no_grad():
            expected = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            inputs = masked_targets({"input_ids": ids, "attention_mask": mask, "labels": labels})
            assert inputs["positions"].tolist() == [2, 9 + 4, 18 + 7]
            ours = MaskedLmLoss(model)(**inputs) / 3
            full = MaskedLmLoss(model)
            full.head = None  # the fallback: the model's full forward
            assert torch.allclose(ours, expected, atol=1e-6)
            assert torch.allclose(full(**inputs) / 3, expected, atol=1e-6)


# -- real Ray Train jobs ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _run(plan: BtfPlan, root: Path, **kwargs):
    return run_btf_cached(plan, root / "cache", storage_path=str(root / "ray"), log=lambda _: None, **kwargs)


@pytest.fixture(scope="module")
def btf_run(ray_session, smoke_model, corpus, tmp_path_factory):
    plan = make_plan(smoke_model, *corpus, ("en", "xx"), (5, 10), SETTINGS)
    root = tmp_path_factory.mktemp("btf-run")
    started = time.perf_counter()
    result = _run(plan, root)
    return plan, root, result, time.perf_counter() - started


def test_one_job_leaves_a_loadable_model_at_every_requested_step(btf_run, smoke_model):
    plan, root, result, _seconds = btf_run
    assert not result.hit and result.key == plan.key and is_cached(plan, root / "cache")
    assert sorted(p.name for p in result.path.iterdir()) == [".xlt-manifest.json", "btf.json", "step-10", "step-5"]
    original = _weights(Path(smoke_model))
    weights = {}
    for steps in plan.steps:
        folder = result.checkpoint(steps)
        assert not (folder / TRAINING_STATE).exists()
        AutoTokenizer.from_pretrained(folder)
        AutoModelForMaskedLM.from_pretrained(folder)
        classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
        assert classifier.num_labels == 3
        weights[steps] = _weights(folder)
        assert set(weights[steps]) == set(original)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(weights[5][name], original[name])
    assert not torch.equal(weights[10][name], weights[5][name])
    meta = json.loads((result.path / "btf.json").read_text())
    assert meta["steps"] == [5, 10] and meta["key"] == plan.key and meta["languages"] == ["en", "xx"]
    assert set(meta["mlm_loss"]) == {"5", "10"} and all(np.isfinite(v) and v > 0 for v in meta["mlm_loss"].values())
    assert meta["mlm_loss"]["10"] < meta["mlm_loss"]["5"]  # lr 1e-3 on 200 short sentences: it learns fast
    assert meta["tokens_per_second"] > 0 and meta["metrics"]["10"]["learning_rate"] == pytest.approx(1e-3)
    assert not any((root / "ray").iterdir())  # the Ray run folder is gone once the cache is published


def test_second_call_is_a_cache_hit_without_ray_train(btf_run, monkeypatch):
    plan, root, first, _seconds = btf_run

    def no_fit(*args, **kwargs):
        raise AssertionError("a cache hit must not start Ray Train")

    monkeypatch.setattr(btf_mlm, "_fit", no_fit)
    started = time.perf_counter()
    again = _run(plan, root)
    assert again.hit and again.path == first.path and again.meta == first.meta
    assert time.perf_counter() - started < 1.0


def test_a_cached_run_to_more_step_counts_covers_a_plan_for_fewer(btf_run):
    """A later sweep asking for a subset of a cached run's step counts (a confirm of the searched best) uses that
    run's checkpoints: the same plan otherwise, so the same checkpoints (next test)."""
    plan, root, result, _seconds = btf_run
    cache = root / "cache"
    fewer = dataclasses.replace(plan, steps=(10,))
    assert covering_plan(fewer, cache) == plan and btf_cache_path(covering_plan(fewer, cache), cache) == result.path
    assert covering_plan(plan, cache) == plan
    not_kept = dataclasses.replace(plan, steps=(7,))  # a step count the cached run did not keep
    assert covering_plan(not_kept, cache) == not_kept
    other_settings = dataclasses.replace(fewer, settings=dataclasses.replace(SETTINGS, seed=4))
    assert covering_plan(other_settings, cache) == other_settings
    assert covering_plan(fewer, root / "elsewhere") == fewer  # an empty cache covers nothing


def test_a_shorter_run_gives_the_same_checkpoint(btf_run):
    plan, root, result, _seconds = btf_run
    short = _run(dataclasses.replace(plan, steps=(5,)), root)
    assert not short.hit and short.path != result.path
    ours, theirs = _weights(short.checkpoint(5)), _weights(result.checkpoint(5))
    for name in ours:  # bitwise: same ops, same thread count, every random draw seeded by (seed, step)
        assert torch.equal(ours[name], theirs[name]), name
    assert short.meta["mlm_loss"]["5"] == result.meta["mlm_loss"]["5"]


def test_a_damaged_checkpoint_cache_is_retrained_with_one_line(btf_run, tmp_path):
    """A checkpoint truncated after the cache was published (issue 20 item 4): the next call says so in one line,
    does not use it, and trains the entry again, bit for bit the same."""
    import shutil

    from tests.test_cache_damage import truncate

    plan, root, result, _seconds = btf_run
    copy = tmp_path / "cache" / "btf" / result.path.name  # the module's entry stays intact for the other tests
    shutil.copytree(result.path, copy)
    weights = copy / "step-10" / "model.safetensors"
    new, old = truncate(weights)
    assert not is_cached(plan, tmp_path / "cache")
    lines: list[str] = []
    again = run_btf_cached(plan, tmp_path / "cache", storage_path=str(tmp_path / "ray"), log=lines.append)
    assert [line for line in lines if "is damaged" in line] == [
        f"cache entry {copy} is damaged (file step-10/model.safetensors: size {new}, expected {old}): rebuilding"]
    assert not again.hit and again.path == copy and is_cached(plan, tmp_path / "cache")
    ours, theirs = _weights(copy / "step-10"), _weights(result.checkpoint(10))
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]


@pytest.mark.slow
def test_a_failed_job_is_resumed_exactly_by_the_next_call(btf_run, tmp_path, monkeypatch):
    plan, _root, uninterrupted, _seconds = btf_run
    loop_config = btf_mlm._loop_config
    monkeypatch.setattr(btf_mlm, "_loop_config", lambda *a: {**loop_config(*a), "fail_after_step": 5})
    with pytest.raises(BtfFailed, match=r"^BTF MLM job btf-\w+ failed \(.*injected failure after step 5.*\)"):
        _run(plan, tmp_path)
    assert not is_cached(plan, tmp_path / "cache")
    monkeypatch.setattr(btf_mlm, "_loop_config", loop_config)
    resumed = _run(plan, tmp_path)
    assert resumed.meta["resumed_from_step"] == 5
    for steps in plan.steps:
        ours, theirs = _weights(resumed.checkpoint(steps)), _weights(uninterrupted.checkpoint(steps))
        assert all(torch.equal(ours[name], theirs[name]) for name in ours), steps


@pytest.mark.slow
def test_two_workers_train_the_same_global_batches(ray_session, smoke_model, corpus, tmp_path):
    """Without dropout, DDP over 2 workers matches 1 worker: same rows, masks and global-mean loss."""
    from transformers import BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(smoke_model, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.save_pretrained(tmp_path / "no-dropout")
    AutoTokenizer.from_pretrained(smoke_model).save_pretrained(tmp_path / "no-dropout")
    plan = make_plan(tmp_path / "no-dropout", *corpus, ("en", "xx"), (4,), SETTINGS)
    one = _run(plan, tmp_path / "one")
    two = _run(plan, tmp_path / "two", num_workers=2)
    assert two.meta["num_workers"] == 2
    ours, theirs = _weights(two.checkpoint(4)), _weights(one.checkpoint(4))
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5, msg=name)
    assert two.meta["mlm_loss"]["4"] == pytest.approx(one.meta["mlm_loss"]["4"], rel=1e-5)


def test_a_model_without_a_mask_token_fails_before_ray_train(tmp_path, corpus, monkeypatch):
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *_WORDS])}
    BertTokenizerFast(vocab=vocab, mask_token=None).save_pretrained(tmp_path / "model")
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=16)).save_pretrained(tmp_path / "model")
    monkeypatch.setattr(btf_mlm, "_fit", lambda *a, **k: pytest.fail("Ray Train started"))
    plan = make_plan(tmp_path / "model", *corpus, ("en",), (2,), SETTINGS)
    with pytest.raises(ValueError, match="no mask token"):
        _run(plan, tmp_path)
    with pytest.raises(ValueError, match="split evenly"):
        _run(plan, tmp_path, num_workers=3)


def test_a_second_caller_waits_for_the_job_on_the_same_key_and_gets_its_cache(smoke_model, corpus, tmp_path,
                                                                            monkeypatch):
    plan = make_plan(smoke_model, *corpus, ("en", "xx"), (5,), SETTINGS)
    target = btf_cache_path(plan, tmp_path / "cache")
    monkeypatch.setattr(btf_mlm, "_fit", lambda *a, **k: pytest.fail("the waiting caller trained too"))
    holding = threading.Event()

    def other_job():
        with btf_mlm._job_lock(target, print):
            holding.set()
            time.sleep(0.5)
            target.mkdir(parents=True)
            (target / "btf.json").write_text(json.dumps({"key": plan.key}))
            write_manifest(target, btf_mlm.BTF_FORMAT)  # what a publish leaves: the entry with its manifest

    thread = threading.Thread(target=other_job)
    thread.start()
    holding.wait()
    messages: list[str] = []
    result = run_btf_cached(plan, tmp_path / "cache", storage_path=str(tmp_path / "ray"), log=messages.append)
    thread.join()
    assert result.hit and result.path == target
    assert messages and "waiting" in messages[0]
