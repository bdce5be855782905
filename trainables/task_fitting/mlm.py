"""Bilingual Task Fitting (BTF, 2310.04726 stage 1): continued MLM training on unlabelled task text, cached.

The multilingual encoder goes on with masked-language-model training on the task's unlabelled
text in the source and target languages, before fine-tuning. The sweep searches the number of
MLM steps among a few values, so one Ray Train job trains **one** run up to the largest and keeps
a checkpoint at every requested step count (``step-<n>/``, a complete Hugging Face model folder
with the input folder's tokenizer files). For a checkpoint at step n to equal what a run of n
steps would give, the learning rate is **constant after a linear warmup** (no decay towards the
end: a decay would make step n depend on the total), and every step's randomness is a function of
``(seed, step)`` only (``trainables.task_fitting.worker``).

Nothing here depends on a trial's fine-tuning knobs, so the job runs once per (model, corpus,
languages, steps, settings, transformers version) and is cached under that content hash: every
trial and seed of a sweep, and later sweeps, load the same checkpoints. The cache folder appears
atomically (built aside, then renamed; ``btf.json`` is written last), as ``trainables.methods.salt.scan``
does. The Ray Train run is named after the key, so a job that died is resumed from its last
checkpoint (optimizer state included) by the next call; once the cache is published, the run
folder is deleted (it would double the disk, and its optimizer states only serve resuming).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from trainables.task_fitting.settings import BtfSettings
from trainables.cache_manifest import check_entry, damaged_or_absent, intact, usable_entry, write_manifest
from trainables.publish import publish_dir, scratch_dir, scratch_path

BTF_FORMAT = "btf-mlm-v1"
CORPUS_FORMAT = "btf-corpus-v1"
META_FILE = "btf.json"


class BtfFailed(Exception):
    """The BTF MLM job did not produce its checkpoints. ``str()`` is one line for the user."""


@dataclass(frozen=True)
class BtfPlan:
    """Everything the BTF checkpoints depend on; ``key`` hashes it (paths are not part of it, digests are)."""

    model_dir: str
    corpus_path: str  # a ``Dataset.save_to_disk`` folder with one string column ``text`` (``build_corpus``)
    corpus_digest: str
    model_digest: str
    languages: tuple[str, ...]
    steps: tuple[int, ...]  # normalised to sorted and unique
    settings: BtfSettings = field(default_factory=BtfSettings)

    def __post_init__(self) -> None:
        steps = tuple(sorted({int(s) for s in self.steps}))
        if not steps or steps[0] <= 0:
            raise ValueError(f"BTF steps must be positive step counts, got {tuple(self.steps)}")
        if not self.languages:
            raise ValueError("BTF needs the corpus languages (source and targets), got none")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "languages", tuple(self.languages))
        self.settings.validate()

    @property
    def key(self) -> str:
        import transformers

        header = {"format": BTF_FORMAT, "model": self.model_digest, "corpus": self.corpus_digest,
                  "languages": sorted(self.languages), "steps": list(self.steps), "settings": asdict(self.settings),
                  "transformers": transformers.__version__}
        return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()


def make_plan(model_dir: str | Path, corpus_path: str | Path, corpus_digest: str, languages: Sequence[str],
              steps: Sequence[int], settings: BtfSettings | None = None) -> BtfPlan:
    """A ``BtfPlan`` with the model folder's digest computed (weights, config and tokenizer files)."""
    from trainables.model_checks import model_digest

    return BtfPlan(str(model_dir), str(corpus_path), corpus_digest, model_digest(model_dir), tuple(languages),
                   tuple(steps), settings or BtfSettings())


@dataclass(frozen=True)
class BtfResult:
    path: Path
    key: str
    hit: bool
    meta: dict

    def checkpoint(self, steps: int) -> Path:
        return checkpoint_dir(self.path, steps)


def btf_cache_path(plan: BtfPlan, cache_dir: str | Path) -> Path:
    """Where the checkpoints of ``plan`` live (complete once ``btf.json`` is there)."""
    return Path(cache_dir) / "btf" / plan.key[:16]


def checkpoint_dir(path: str | Path, steps: int) -> Path:
    """The Hugging Face model folder after ``steps`` MLM steps, inside a BTF cache folder."""
    return Path(path) / f"step-{steps}"


def _read_meta(target: Path, key: str) -> dict | None:
    """The entry's ``btf.json`` when it is for ``key`` and the entry is intact (``trainables.cache_manifest``)."""
    meta_path = target / META_FILE
    if not meta_path.is_file() or check_entry(target, BTF_FORMAT) is not None:
        return None
    meta = json.loads(meta_path.read_text())
    return meta if meta.get("key") == key else None


def covering_plan(plan: BtfPlan, cache_dir: str | Path) -> BtfPlan:
    """``plan`` itself when it is cached (or nothing covers it); else the plan of an intact cached run that is
    ``plan`` with more step counts (the fewest such), whose checkpoints include every one ``plan`` asks for.

    A checkpoint does not depend on how far the run went on: the learning rate is constant after warmup and the
    data order is fixed by the seed (``test_a_shorter_run_gives_the_same_checkpoint``), so the run to 20 and 40
    steps holds the very checkpoint a run to 20 steps would write. A later sweep that needs fewer step counts
    (a confirm of the searched best) therefore trains no MLM."""
    if is_cached(plan, cache_dir):
        return plan
    covering = []
    for meta_path in sorted((Path(cache_dir) / "btf").glob(f"*/{META_FILE}")):
        try:
            steps = tuple(int(s) for s in json.loads(meta_path.read_text()).get("steps", ()))
        except (OSError, ValueError, TypeError):
            continue  # a damaged entry is nobody's cover; its own plan rebuilds it
        if steps and set(plan.steps) < set(steps):
            candidate = replace(plan, steps=steps)
            if btf_cache_path(candidate, cache_dir) == meta_path.parent and is_cached(candidate, cache_dir):
                covering.append(candidate)
    return min(covering, key=lambda c: (len(c.steps), c.steps), default=plan)


def is_cached(plan: BtfPlan, cache_dir: str | Path) -> bool:
    """Whether the checkpoints of ``plan`` are cached and intact; quiet (``run_btf_cached`` says so when it
    rebuilds a damaged entry)."""
    return _read_meta(btf_cache_path(plan, cache_dir), plan.key) is not None


# -- the corpus ---------------------------------------------------------------------------------

def _texts(lang: str, source: Any) -> list[str]:
    """A language's texts as a list of strings (a list, or a Dataset's ``text`` column)."""
    from datasets import Dataset

    if isinstance(source, Dataset):
        if "text" not in source.column_names:
            raise ValueError(f"BTF corpus for {lang!r}: the Dataset has no 'text' column ({source.column_names})")
        source = source["text"]
    texts = list(source)
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"BTF corpus for {lang!r}: texts must be strings (join token lists first), got "
                         f"{type(bad).__name__}")
    return texts


def build_corpus(texts_by_language: Mapping[str, Any], out_dir: str | Path, *, seed: int = 0) -> tuple[Path, str]:
    """Mix the languages' texts into one shuffled ``text`` Dataset; return its folder and content digest.

    Blank texts are dropped. Languages are taken in sorted order before the seeded shuffle, so the
    mapping's key order does not matter. The folder is ``<out_dir>/btf-corpus-<digest[:16]>``
    (content-addressed, written aside then renamed), so building the same corpus twice is free.
    """
    from datasets import Dataset, Features, Value

    from trainables.data import dataset_content_hash

    if not texts_by_language:
        raise ValueError("BTF corpus: no languages given")
    rows = [text for lang in sorted(texts_by_language) for text in _texts(lang, texts_by_language[lang])
            if text.strip()]
    if not rows:
        raise ValueError(f"BTF corpus: no non-blank text in {sorted(texts_by_language)}")
    order = np.random.default_rng(seed).permutation(len(rows))
    corpus = Dataset.from_dict({"text": [rows[i] for i in order]}, features=Features({"text": Value("string")}))
    digest = dataset_content_hash(corpus)
    target = Path(out_dir) / f"btf-corpus-{digest[:16]}"
    if not usable_entry(target, CORPUS_FORMAT):
        with scratch_dir(target) as scratch:
            corpus.save_to_disk(str(scratch))
            write_manifest(scratch, CORPUS_FORMAT)
            # a concurrent build of the same content that won keeps its copy (when intact); a damaged one goes
            publish_dir(scratch, target, complete=intact(CORPUS_FORMAT), stale=damaged_or_absent(CORPUS_FORMAT))
    return target, digest


def tokenize_corpus(plan: BtfPlan, out_file: Path) -> int:
    """Tokenise the corpus once, in the driver, into one Arrow file the workers memory-map; return its rows.

    Truncated to ``max_length``, not padded (the collator pads per batch); the special-tokens mask
    is kept so the collator does not recompute it per row.
    """
    import datasets
    from datasets import Features, List, Value
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(plan.model_dir)
    if tokenizer.mask_token is None:
        raise ValueError(f"the tokenizer of {plan.model_dir} has no mask token; BTF trains a masked language model")
    corpus = datasets.load_from_disk(plan.corpus_path)
    if corpus.column_names != ["text"]:
        raise ValueError(f"BTF corpus {plan.corpus_path} must have exactly one column 'text', "
                         f"got {corpus.column_names}")

    def encode(batch: dict[str, list]) -> dict[str, list]:
        out = tokenizer(batch["text"], truncation=True, max_length=plan.settings.max_length,
                        return_special_tokens_mask=True, return_attention_mask=False, return_token_type_ids=False)
        return {"input_ids": out["input_ids"], "special_tokens_mask": out["special_tokens_mask"]}

    features = Features({"input_ids": List(Value("int32")), "special_tokens_mask": List(Value("int8"))})
    tokens = corpus.map(encode, batched=True, remove_columns=["text"], features=features,
                        cache_file_name=str(out_file), new_fingerprint=f"btf-{plan.key[:16]}",
                        desc="tokenize BTF corpus")
    return len(tokens)


# -- the job --------------------------------------------------------------------------------------

def _loop_config(plan: BtfPlan, tokens_path: Path) -> dict[str, Any]:
    """What every worker gets (small: paths, not data)."""
    return {"model_dir": plan.model_dir, "tokens_path": str(tokens_path), "steps": list(plan.steps),
            "settings": asdict(plan.settings), "key": plan.key}


def _one_line(error: BaseException) -> str:
    """The root cause's type and first line (Ray wraps worker errors in several layers of traceback)."""
    cause = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    failures = getattr(error, "worker_failures", None)  # WorkerGroupError: rank -> exception
    if failures:
        cause = next(iter(failures.values()))
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    messages = [line for line in lines if ":" in line and not line.startswith("File ")]
    text = messages[-1] if messages else (lines[0] if lines else "")
    return f"{type(cause).__name__}: {text}"[:300]


def _fit(plan: BtfPlan, tokens_path: Path, *, storage_path: str, num_workers: int, use_gpu: bool,
         cpus_per_worker: float, max_failures: int):
    import ray.train
    from ray.train.torch import TorchTrainer

    from trainables.disk_space import EndRunOnFullDisk
    from trainables.task_fitting.worker import train_loop_per_worker

    resources: dict[str, float] = {"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=_loop_config(plan, tokens_path),
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=f"btf-{plan.key[:16]}",  # deterministic: a failed job is resumed by the next call
            storage_path=storage_path,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=None),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            callbacks=[EndRunOnFullDisk()],  # a full disk ends the job at once: its restarts would meet it again
        ),
    )
    try:
        return trainer.fit()
    except Exception as error:  # noqa: BLE001 - TrainingFailedError and whatever the controller raises
        raise BtfFailed(f"BTF MLM job btf-{plan.key[:16]} failed ({_one_line(error)}); its checkpoints so far are "
                        f"kept under {storage_path} and the next call resumes from the last one") from error


def _copy_checkpoints(result: Any, plan: BtfPlan, out: Path) -> dict[int, dict]:
    """Copy each reported ``step-<n>`` checkpoint (``Result.best_checkpoints``) to ``out``; return its metrics."""
    from trainables.task_fitting.worker import TRAINING_STATE

    found = {int(metrics["step"]): (checkpoint, metrics) for checkpoint, metrics in result.best_checkpoints or []}
    missing = [s for s in plan.steps if s not in found]
    if missing:
        raise BtfFailed(f"BTF MLM job btf-{plan.key[:16]} reported no checkpoint for step(s) {missing}; "
                        "nothing was cached")
    out.mkdir(parents=True, exist_ok=True)
    for steps in plan.steps:
        with found[steps][0].as_directory() as local:
            shutil.copytree(local, checkpoint_dir(out, steps), ignore=shutil.ignore_patterns(TRAINING_STATE))
    return {steps: dict(found[steps][1]) for steps in plan.steps}


def _remove_run(result: Any, log: Callable[[str], None]) -> None:
    try:
        result.filesystem.delete_dir(result.path)
    except OSError as error:  # the cache is complete; a left-over run folder only costs disk
        log(f"[btf] could not delete the Ray Train run folder {result.path}: {error}")


def run_btf_cached(plan: BtfPlan, cache_dir: str | Path, *, storage_path: str, num_workers: int = 1,
                   use_gpu: bool = False, cpus_per_worker: float = 1.0, max_failures: int = 0,
                   log: Callable[[str], None] = print) -> BtfResult:
    """The BTF checkpoints of ``plan``: from the cache (no Ray), or trained as one Ray Train job and published.

    Ray must be initialised by the caller. ``cache_dir`` must be visible to the workers (the
    tokenised corpus is written beside the cache folder and memory-mapped by them).
    """
    key = plan.key
    target = btf_cache_path(plan, cache_dir)
    meta = _read_meta(target, key) if usable_entry(target, BTF_FORMAT, log=log) else None
    if meta is not None:
        return BtfResult(target, key, True, meta)
    plan.settings.validate()
    if num_workers < 1 or plan.settings.batch_size % num_workers:
        raise ValueError(f"BTF batch_size {plan.settings.batch_size} must split evenly over {num_workers} worker(s)")
    from trainables.model_checks import check_mlm_head

    check_mlm_head(plan.model_dir)  # fails in seconds, before the cluster does anything
    with _job_lock(target, log):
        meta = _read_meta(target, key)  # published while we waited
        if meta is not None:
            return BtfResult(target, key, True, meta)
        return _train_and_publish(plan, target, storage_path=storage_path, num_workers=num_workers, use_gpu=use_gpu,
                                  cpus_per_worker=cpus_per_worker, max_failures=max_failures, log=log)


@contextlib.contextmanager
def _job_lock(target: Path, log: Callable[[str], None]) -> Iterator[None]:
    """One job per key at a time: two sweeps training the same key would share one Ray Train run folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"[btf] another process is training {target.name}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_and_publish(plan: BtfPlan, target: Path, *, storage_path: str, num_workers: int, use_gpu: bool,
                       cpus_per_worker: float, max_failures: int, log: Callable[[str], None]) -> BtfResult:
    key = plan.key
    scratch = scratch_path(target, key[:16])
    started = time.perf_counter()
    try:
        scratch.mkdir(parents=True)
        rows = tokenize_corpus(plan, scratch / "tokens.arrow")
        where = f"{num_workers} GPU worker(s)" if use_gpu else f"{num_workers} CPU worker(s)"
        log(f"[btf] MLM on {rows} texts in {', '.join(plan.languages)}: {plan.steps[-1]} steps of "
            f"{plan.settings.batch_size}, checkpoints at {', '.join(map(str, plan.steps))} ({where}, Ray Train)")
        result = _fit(plan, scratch / "tokens.arrow", storage_path=storage_path, num_workers=num_workers,
                      use_gpu=use_gpu, cpus_per_worker=cpus_per_worker, max_failures=max_failures)
        metrics = _copy_checkpoints(result, plan, scratch / "out")
        meta = _meta(plan, rows, metrics, result.return_value or {}, time.perf_counter() - started,
                     num_workers=num_workers, use_gpu=use_gpu)
        (scratch / "out" / META_FILE).write_text(json.dumps(meta, indent=1))
        write_manifest(scratch / "out", BTF_FORMAT)
        # a concurrent sweep that published the same key first keeps its copy (when intact); a damaged one goes
        publish_dir(scratch / "out", target, complete=lambda done: _read_meta(done, key) is not None,
                    stale=damaged_or_absent(BTF_FORMAT))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _remove_run(result, log)
    log(f"[btf] done in {meta['seconds']:.1f} s ({meta['tokens_per_second']:.0f} tokens/s while training; "
        f"MLM loss {', '.join(f'{s}: {v:.3f}' for s, v in meta['mlm_loss'].items())}): {target}")
    return BtfResult(target, key, False, _read_meta(target, key) or meta)


def _meta(plan: BtfPlan, rows: int, metrics: dict[int, dict], totals: dict, seconds: float, *,
          num_workers: int, use_gpu: bool) -> dict:
    import torch
    import transformers

    train_seconds = float(totals.get("train_seconds") or 0.0)
    tokens_per_second = (totals["tokens"] / train_seconds if train_seconds > 0
                         else float(np.mean([m["tokens_per_second"] for m in metrics.values()])))
    return {"key": plan.key, "format": BTF_FORMAT, "steps": list(plan.steps), "languages": list(plan.languages),
            "settings": asdict(plan.settings), "model_dir": plan.model_dir, "model_digest": plan.model_digest,
            "corpus_path": plan.corpus_path, "corpus_digest": plan.corpus_digest, "corpus_rows": rows,
            "num_workers": num_workers, "use_gpu": use_gpu, "seconds": round(seconds, 3),
            "train_seconds": round(train_seconds, 3), "tokens_per_second": tokens_per_second,
            "resumed_from_step": int(totals.get("resumed_from") or 0), "threads_per_worker": totals.get("threads"),
            "mlm_loss": {str(s): float(m["mlm_loss"]) for s, m in metrics.items()},
            "metrics": {str(s): m for s, m in metrics.items()},
            "lr_schedule": "constant after linear warmup",
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__}}
