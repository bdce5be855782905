"""SALT's offline candidate scan: one unmasked MLM pass over the training sentences, cached.

For every training sentence (each side of a pair on its own, as the paper augments them) the
MLM sees the sentence **without masking**; at every substitutable position, and for every
language (English synonyms and the target languages), we keep the top-k tokens of that
language's vocabulary other than the original word (and its case variants), with their
probabilities under the softmax over the **whole** vocabulary (what makes Appendix A's 1e-7
meaningful), and the probability of the original word itself where it is a token of that
language's vocabulary (``orig_<lang>``; 0 where it is not). The paper's rule (the best token of
the language, no substitution when that is the original) and the rule that excludes the original
are then both array arithmetic on the same scan. Candidates are written per position of the pair
encoding the training loop uses, so applying thresholds later is array arithmetic
(``trainables.methods.salt.codeswitch``).

None of this depends on the thresholds, so it runs once per (model, data, languages, word lists,
k, max length) and is cached under that content hash: every trial and seed of a sweep, and later
sweeps with other thresholds, read the same Parquet files. The scan runs as a Ray Data
``map_batches`` over a pool of ``CandidateScanner`` actors (GPU actors when the cluster has GPUs).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from trainables.cache_manifest import check_entry, damaged_or_absent, intact, usable_entry, write_manifest
from trainables.publish import publish_dir, scratch_path

if TYPE_CHECKING:
    import torch

SCAN_FORMAT = "salt-scan-v2"  # v2: orig_<lang>, the original word's probability
META_FILE = "scan.json"
SALT_SCAN = "salt_scan"  # the scan's workload name in orchestrator/throughput.csv (its actors per GPU are read there)


@dataclass(frozen=True)
class ScanSettings:
    """How the sweep chooses SALT's languages and runs the scan (the ``--salt-*`` flags)."""

    languages: tuple[str, ...] | None = None  # None: the paper's rule (top ``num_languages`` by overlap)
    wordlists: str | None = None  # None: wordfreq (or the smoke profile's generated lists)
    num_languages: int = 3
    top_k: int = 1
    batch_size: int = 64  # training examples per map_batches batch (two sentences each for pairs)
    gpus_per_actor: float | None = None  # None: from the measured scan rates on a GPU cluster, else CPU actors
    concurrency: int | None = None  # None: one actor per GPU (or per 2 CPUs on a CPU cluster)
    shared_threshold: bool = False  # the paper's one threshold for every target language


@dataclass(frozen=True)
class ScanPlan:
    """Everything the candidates depend on; ``key`` hashes it."""

    model_dir: str
    text_fields: tuple[str, ...]
    max_length: int
    top_k: int
    vocab: dict[str, tuple[int, ...]]  # language -> token ids ("en" first: synonyms)
    data_digest: str
    model_digest: str
    words_digests: dict[str, str] = field(default_factory=dict)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.vocab)

    @property
    def key(self) -> str:
        ids = {lang: hashlib.sha256(np.asarray(v, dtype=np.int64).tobytes()).hexdigest() for lang, v in self.vocab.items()}
        header = {"format": SCAN_FORMAT, "fields": list(self.text_fields), "max_length": self.max_length,
                  "top_k": self.top_k, "vocab": ids, "data": self.data_digest, "model": self.model_digest,
                  "words": self.words_digests}
        return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()


# -- the scan itself ----------------------------------------------------------------------------

def top_candidates(log_probs: "torch.Tensor", original_ids: "torch.Tensor", lang_ids: "torch.Tensor",
                   fold: "torch.Tensor", top_k: int) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Top-k tokens of one language at each position other than the original word, and the original's probability.

    ``log_probs`` [N, V]: log-softmax over the whole vocabulary; ``original_ids`` [N];
    ``lang_ids`` [L]: the language's tokens; ``fold`` [V]: a class id per token that is equal for
    case variants of one string. Returns token ids and probabilities, both [N, k], best first, and
    [N] the probability of the original word as a token of the language (its most probable case
    variant in the language's vocabulary; 0 when the language has none).
    """
    import torch

    restricted = log_probs.index_select(-1, lang_ids)  # [N, L]: the whole-vocabulary probabilities
    same_word = fold.index_select(0, lang_ids)[None, :] == fold.index_select(0, original_ids)[:, None]
    original = restricted.masked_fill(~same_word, -torch.inf).max(dim=-1).values.exp()
    restricted = restricted.masked_fill(same_word, -torch.inf)
    k = min(top_k, lang_ids.numel())
    values, index = restricted.topk(k, dim=-1)
    return lang_ids[index], values.exp(), original


class CandidateScanner:
    """The Ray Data callable class: holds the MLM on its device, turns text batches into candidates.

    Input batch: ``row`` and the task's text fields. Output (a ``pyarrow.Table``): ``row``, the pair
    encoding's ``input_ids``, and per language ``cand_<lang>`` / ``prob_<lang>``: ``k`` values per
    position of ``input_ids`` (``-1`` / ``0`` where the token is not substitutable), and ``orig_<lang>``:
    one value per position, the original word's probability as a token of the language (0 where none).
    """

    def __init__(self, model_dir: str, text_fields: Sequence[str], vocab: dict[str, Sequence[int]] | str, top_k: int,
                 max_length: int, device: str | None = None):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        if isinstance(vocab, str):  # a JSON file: keeps the actors' constructor arguments small
            vocab = json.loads(Path(vocab).read_text())

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 accuracy for the 1e-7 scale, tensor-core speed
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForMaskedLM.from_pretrained(model_dir, attn_implementation="sdpa").to(self.device).eval()
        self.text_fields, self.top_k, self.max_length = tuple(text_fields), top_k, max_length
        self.vocab = {lang: torch.as_tensor(list(ids), dtype=torch.long, device=self.device) for lang, ids in vocab.items()}
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        classes: dict[str, int] = {}
        self.fold = torch.as_tensor([classes.setdefault(str(t).lower(), len(classes)) for t in tokens],
                                    dtype=torch.long, device=self.device)
        self.has_letter = np.array([any(ch.isalpha() for ch in str(t)) for t in tokens], dtype=bool)
        self.forward_passes = 0

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        torch = self.torch
        columns = [[str(text) for text in batch[name]] for name in self.text_fields]
        n = len(columns[0])
        pair = self.tokenizer(*columns, truncation=True, max_length=self.max_length)
        sentences = [columns[f][i] for i in range(n) for f in range(len(columns))]
        single = self.tokenizer(sentences, truncation=True, max_length=self.max_length)
        padded = self.tokenizer.pad({"input_ids": single["input_ids"], "attention_mask": single["attention_mask"]},
                                    return_tensors="pt")
        ids = padded["input_ids"].to(self.device)
        mask = padded["attention_mask"].to(self.device).bool()
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            self.forward_passes += 1
            log_probs = torch.log_softmax(logits[mask], dim=-1)  # [tokens, V]: real positions only
            originals = ids[mask]
            found = {lang: top_candidates(log_probs, originals, lang_ids, self.fold, self.top_k)
                     for lang, lang_ids in self.vocab.items()}
        found = {lang: (c.cpu().numpy().astype(np.int32), p.cpu().numpy().astype(np.float32),
                        o.cpu().numpy().astype(np.float32)) for lang, (c, p, o) in found.items()}
        k = next(iter(found.values()))[0].shape[1]

        # Sentence token j of sentence s sits at flat index starts[s] + j (real positions only).
        lengths = [len(x) for x in single["input_ids"]]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        out_ids, out = [], {lang: ([], [], []) for lang in found}
        for i in range(n):
            pair_ids = np.asarray(pair["input_ids"][i], dtype=np.int32)
            gather = np.full(len(pair_ids), -1, dtype=np.int64)  # flat index of each pair position, or -1
            pair_seq = pair.sequence_ids(i)
            for f in range(len(columns)):
                s = i * len(columns) + f
                enc = single[s]
                words = enc.word_ids
                seq = enc.sequence_ids
                sentence_positions = [j for j, sid in enumerate(seq) if sid == 0]
                pair_positions = [p for p, sid in enumerate(pair_seq) if sid == f]
                counts: dict[int, int] = {}
                for j in sentence_positions:
                    counts[words[j]] = counts.get(words[j], 0) + 1
                for p, j in zip(pair_positions, sentence_positions):
                    token = single["input_ids"][s][j]
                    if pair_ids[p] == token and counts[words[j]] == 1 and self.has_letter[token]:
                        gather[p] = starts[s] + j  # a whole word with a letter: substitutable
            out_ids.append(pair_ids)
            eligible = gather >= 0
            for lang, (cand, prob, orig) in found.items():
                c = np.full((len(pair_ids), k), -1, dtype=np.int32)
                p = np.zeros((len(pair_ids), k), dtype=np.float32)
                o = np.zeros(len(pair_ids), dtype=np.float32)
                c[eligible], p[eligible], o[eligible] = (cand[gather[eligible]], prob[gather[eligible]],
                                                         orig[gather[eligible]])
                out[lang][0].append(c.reshape(-1))
                out[lang][1].append(p.reshape(-1))
                out[lang][2].append(o)
        table = {"row": pa.array(np.asarray(batch["row"], dtype=np.int64)),
                 "input_ids": pa.array(out_ids, type=pa.list_(pa.int32()))}
        for lang, (cands, probs, origs) in out.items():
            table[f"cand_{lang}"] = pa.array(cands, type=pa.list_(pa.int32()))
            table[f"prob_{lang}"] = pa.array(probs, type=pa.list_(pa.float32()))
            table[f"orig_{lang}"] = pa.array(origs, type=pa.list_(pa.float32()))
        return pa.table(table)


def text_table(train: Any, text_fields: Sequence[str]):
    """The training split's text columns plus a ``row`` index, as one Arrow table."""
    import pyarrow as pa

    table = train.select_columns(list(text_fields)).data.table.combine_chunks()
    return table.append_column("row", pa.array(np.arange(len(train), dtype=np.int64)))


def scan_with_ray_data(plan: ScanPlan, train: Any, out_dir: Path, *, batch_size: int, gpus_per_actor: float,
                       concurrency: int, cpus_per_actor: float = 1.0) -> int:
    """Run the scan as a Ray Data pipeline; write Parquet files under ``out_dir``; return the row count.

    The input is handed over as ready blocks and the output is written by this (driver) process
    as it streams in, so the only resources the pipeline holds are its actors': no repartition or
    write task can wait behind actors that took every CPU.
    """
    import pyarrow.parquet as pq
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    table = text_table(train, plan.text_fields)
    blocks = max(concurrency * 4, min(200, len(table) // max(batch_size * 4, 1)), 1)
    size = -(-len(table) // blocks)
    ds = ray.data.from_arrow([table.slice(start, size) for start in range(0, len(table), size)])
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_path = out_dir / "vocab.json"  # small constructor arguments for the actors; the sweep's storage
    vocab_path.write_text(json.dumps({lang: list(ids) for lang, ids in plan.vocab.items()}))
    kwargs = dict(model_dir=plan.model_dir, text_fields=plan.text_fields, vocab=str(vocab_path), top_k=plan.top_k,
                  max_length=plan.max_length)
    ds = ds.map_batches(CandidateScanner, fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="numpy",
                        num_gpus=gpus_per_actor or None, num_cpus=cpus_per_actor,
                        compute=ray.data.ActorPoolStrategy(size=concurrency))
    rows = 0
    for index, batch in enumerate(ds.iter_batches(batch_size=None, batch_format="pyarrow")):
        pq.write_table(batch, out_dir / f"part-{index:05d}.parquet")
        rows += batch.num_rows
    vocab_path.unlink()
    return rows


def scan_in_process(plan: ScanPlan, train: Any, *, batch_size: int, device: str | None = None):
    """The same scan as a plain loop in this process (the benchmark's baseline, and small jobs)."""
    import pyarrow as pa

    scanner = CandidateScanner(plan.model_dir, plan.text_fields, plan.vocab, plan.top_k, plan.max_length, device)
    table = text_table(train, plan.text_fields)
    parts = []
    for start in range(0, len(table), batch_size):
        chunk = table.slice(start, batch_size)
        parts.append(scanner({name: chunk.column(name).to_numpy(zero_copy_only=False) for name in chunk.column_names}))
    return pa.concat_tables(parts)


@dataclass(frozen=True)
class ScanResult:
    path: Path
    hit: bool
    key: str
    meta: dict


def cache_path(plan: ScanPlan, cache_dir: str | Path) -> Path:
    """Where the candidates of ``plan`` live (complete once ``scan.json`` and the manifest are there)."""
    return Path(cache_dir) / "salt-candidates" / plan.key[:16]


def is_cached(plan: ScanPlan, cache_dir: str | Path) -> bool:
    """Whether the candidates of ``plan`` are cached and intact (``trainables.cache_manifest``); quiet:
    ``scan_cached`` says so when it rebuilds a damaged entry."""
    return check_entry(cache_path(plan, cache_dir), SCAN_FORMAT) is None


def scan_cached(plan: ScanPlan, train: Any, cache_dir: str | Path, *, batch_size: int, gpus_per_actor: float,
                concurrency: int, log=print) -> ScanResult:
    """The candidates for ``plan``: read from the cache, or scanned with Ray Data and published atomically."""
    key = plan.key
    target = cache_path(plan, cache_dir)
    meta_path = target / META_FILE
    if usable_entry(target, SCAN_FORMAT, log=log):
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return ScanResult(target, True, key, meta)
    scratch = scratch_path(target, key[:16])
    where = f"{concurrency} GPU actor(s) x {gpus_per_actor:g} GPU" if gpus_per_actor else f"{concurrency} CPU actor(s)"
    log(f"[salt] scanning {len(train)} training examples: unmasked MLM over each sentence, top-{plan.top_k} "
        f"candidates in {', '.join(plan.languages)} ({where}, Ray Data)")
    started = time.perf_counter()
    try:
        rows = scan_with_ray_data(plan, train, scratch / "parts", batch_size=batch_size,
                                  gpus_per_actor=gpus_per_actor, concurrency=concurrency)
        if rows != len(train):
            raise RuntimeError(f"the SALT scan returned {rows} of {len(train)} training examples; nothing was cached")
        seconds = time.perf_counter() - started
        meta = {"key": key, "format": SCAN_FORMAT, "rows": rows, "sentences": rows * len(plan.text_fields),
                "seconds": round(seconds, 3), "sentences_per_second": rows * len(plan.text_fields) / max(seconds, 1e-9),
                "languages": list(plan.languages), "vocab_sizes": {k: len(v) for k, v in plan.vocab.items()},
                "top_k": plan.top_k, "max_length": plan.max_length, "model_dir": plan.model_dir,
                "plan": {k: v for k, v in asdict(plan).items() if k != "vocab"}}
        (scratch / "parts" / META_FILE).write_text(json.dumps(meta, indent=1))
        write_manifest(scratch / "parts", SCAN_FORMAT)
        target.parent.mkdir(parents=True, exist_ok=True)
        # a concurrent sweep that published the same key first keeps its copy (when intact); a damaged one goes
        publish_dir(scratch / "parts", target, complete=intact(SCAN_FORMAT), stale=damaged_or_absent(SCAN_FORMAT))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"[salt] scan done in {meta['seconds']:.1f} s ({meta['sentences_per_second']:.1f} sentences/s): {target}")
    return ScanResult(target, False, key, meta)
