"""The BTF MLM job's Ray Train worker: continued masked-LM training with a checkpoint per requested step.

Every step's randomness is a pure function of ``(seed, step)``, never of what ran before:

- the global batch of step s is rows ``s*B .. s*B+B-1`` of an endless stream of epoch permutations,
  each seeded with ``(seed, epoch)``;
- its masking is drawn by ``DataCollatorForLanguageModeling`` with a generator seeded with
  ``(seed, step)``, over the **global** batch, on every rank; each rank then keeps its rows;
- dropout is seeded with ``(seed, step, rank)``.

The optimizer, precision, seeding, DDP unwrapping, NaN guard and checkpointed optimizer state
are the fine-tuning loop's tools (``trainables.training``); what is the MLM job's own is above.

So a checkpoint at step n is the same whatever the later steps are, a run resumed from a
checkpoint replays the lost steps exactly, and the data order and masking do not depend on the
number of workers. The loss is the sum over a rank's masked tokens divided by the global
batch's count of masked tokens (times the world size, which DDP's gradient averaging undoes):
the gradient is the global batch's mean, however the rows fall on ranks.

The MLM head runs only at the masked positions (about 15 % of the tokens) where the model is an
encoder plus one head module (BERT, XLM-R): mBERT's output layer is 768 x 119,547, about as much
compute per token as the whole encoder, so this saves close to half a step.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from trainables.checkpoints import RayTrainStore, step_seed
from trainables.labels import IGNORE_INDEX
from trainables.task_fitting.settings import BtfSettings
from trainables.training.distributed import unwrap
from trainables.training.divergence import RunningLoss, ensure_finite
from trainables.training.optim import adamw, constant_schedule, optimizer_step
from trainables.training.precision import autocast_factory
from trainables.training.resume import load_optimization, optimization_state, read_state, write_state
from trainables.training.seeding import reseed, seed_everything

TRAINING_STATE = "btf_training_state.pt"  # optimizer + scheduler + step: for resuming; not copied to the cache
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".onnx")


class BatchOrder:
    """Which corpus rows make the global batch of each step: consecutive slices of seeded epoch permutations."""

    def __init__(self, rows: int, batch_size: int, seed: int):
        if rows < 1:
            raise ValueError("the BTF corpus is empty")
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self._permutations: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            if len(self._permutations) > 2:  # steps only move forward: keep the last few epochs
                del self._permutations[min(self._permutations)]
            self._permutations[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.rows)
        return self._permutations[epoch]

    def indices(self, step: int) -> np.ndarray:
        positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, offsets = np.divmod(positions, self.rows)
        return np.array([self._permutation(int(e))[o] for e, o in zip(epochs, offsets)], dtype=np.int64)

    def epoch(self, steps: int) -> float:
        return steps * self.batch_size / self.rows


class MlmBatches:
    """The collated, masked global batch of a step (CPU tensors), from the tokenised corpus."""

    def __init__(self, tokens: Any, tokenizer: Any, batch_size: int, mlm_probability: float, seed: int):
        from transformers import DataCollatorForLanguageModeling

        self.tokens, self.seed = tokens, seed
        self.order = BatchOrder(len(tokens), batch_size, seed)
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability,
                                                        return_tensors="pt")

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rows = self.tokens[self.order.indices(step).tolist()]
        examples = [{"input_ids": ids, "special_tokens_mask": special}
                    for ids, special in zip(rows["input_ids"], rows["special_tokens_mask"])]
        # The collator draws from ``self.generator`` when it is set (it only creates one itself from ``seed``).
        self.collator.generator = torch.Generator().manual_seed(step_seed(self.seed, step, 0))
        return dict(self.collator(examples))


def shard(batch: Mapping[str, torch.Tensor], rank: int, world_size: int) -> dict[str, torch.Tensor]:
    """This rank's contiguous rows of the global batch, without the padding columns none of them needs."""
    per_rank = batch["input_ids"].shape[0] // world_size
    rows = slice(rank * per_rank, (rank + 1) * per_rank)
    width = int(batch["attention_mask"][rows].sum(dim=1).max())
    return {name: value[rows, :width] for name, value in batch.items()}


def masked_targets(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model inputs plus the flat positions of the masked tokens and their labels, found on the CPU:
    boolean indexing on the GPU would wait for the device every step to learn the count."""
    labels = batch["labels"].reshape(-1)
    positions = (labels != IGNORE_INDEX).nonzero().squeeze(1)
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "positions": positions,
            "targets": labels[positions]}


class MaskedLmLoss(torch.nn.Module):
    """Sum of the MLM cross-entropy over the masked tokens; the head sees only those positions when it can.

    Wraps the Hugging Face model so DDP sees one forward. ``model`` stays reachable for ``save_pretrained``.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.encoder, self.head = split_mlm(model)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = self.head(hidden.flatten(0, 1).index_select(0, positions))
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            logits = logits.flatten(0, 1).index_select(0, positions)
        return F.cross_entropy(logits.float(), targets, reduction="sum")


def split_mlm(model: torch.nn.Module) -> tuple[torch.nn.Module | None, torch.nn.Module | None]:
    """(encoder, head) for an MLM made of its base model and exactly one other module (BERT's ``cls``,
    XLM-R's ``lm_head``), else (None, None): such models run their full forward."""
    children = dict(model.named_children())
    prefix = getattr(model, "base_model_prefix", "")
    others = [module for name, module in children.items() if name != prefix]
    if prefix not in children or len(others) != 1:
        return None, None
    return children[prefix], others[0]


def save_checkpoint(model: torch.nn.Module, model_dir: str, out_dir: Path, state: dict) -> None:
    """A complete HF model folder (weights, config, the input folder's tokenizer files) plus the training state."""
    model.save_pretrained(str(out_dir))
    for path in sorted(Path(model_dir).iterdir()):
        if (path.is_file() and not path.name.startswith(".") and not (out_dir / path.name).exists()
                and path.suffix not in _WEIGHT_SUFFIXES and not path.name.endswith(".index.json")):
            shutil.copy2(path, out_dir / path.name)
    write_state(out_dir, TRAINING_STATE, state)


def train_loop_per_worker(config: dict[str, Any]) -> dict | None:
    """Entry point given to ``TorchTrainer``; returns (on every rank; Ray keeps rank 0's) the run's totals."""
    import ray.train
    import ray.train.torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    settings = BtfSettings(**config["settings"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    wanted = sorted(int(s) for s in config["steps"])

    store = RayTrainStore(rank)
    model, state = _restore(store, config["model_dir"])
    start = state["step"] if state else 0
    seed_everything(settings.seed, deterministic=False)  # every step reseeds; this covers anything before the first
    net = ray.train.torch.prepare_model(MaskedLmLoss(model))
    optimizer = adamw(net, settings, device)
    scheduler = constant_schedule(optimizer, settings.warmup_steps)
    if state:
        load_optimization(state, optimizer, scheduler)

    tokenizer = AutoTokenizer.from_pretrained(config["model_dir"])
    batches = MlmBatches(Dataset.from_file(config["tokens_path"]), tokenizer, settings.batch_size,
                         settings.mlm_probability, settings.seed)
    autocast = autocast_factory(settings.bf16, device)
    losses = RunningLoss(device)  # each step's share of its global batch's mean loss, since the last checkpoint
    tokens, seconds, total_tokens, total_seconds = 0, 0.0, 0, 0.0
    fail_after = config.get("fail_after_step")  # fault injection for the resume test
    net.train()
    for step in range(start, wanted[-1]):
        started = time.perf_counter()
        batch = batches(step)
        denominator = max(int((batch["labels"] != IGNORE_INDEX).sum()), 1)
        tokens += int(batch["attention_mask"].sum())
        local = {k: _to(v, device) for k, v in masked_targets(shard(batch, rank, world)).items()}
        reseed(settings.seed, step, rank)  # dropout
        with autocast():
            loss = net(**local)
        (loss * (world / denominator)).backward()
        losses.add(loss.detach() / denominator)
        optimizer_step(net, optimizer, scheduler, settings.max_grad_norm)
        done = step + 1
        if done not in wanted:
            seconds += time.perf_counter() - started
            continue
        mlm_loss = losses.sum_over_ranks(world > 1) / losses.count  # each rank holds its share of every global mean
        seconds += time.perf_counter() - started
        metrics = {"step": done, "mlm_loss": mlm_loss,
                   "epoch": round(batches.order.epoch(done), 4), "learning_rate": scheduler.get_last_lr()[0],
                   "tokens_per_second": tokens / max(seconds, 1e-9)}
        ensure_finite(mlm_loss, name="the BTF MLM loss", where=f"by step {done}", learning_rate=settings.learning_rate)
        state = {"step": done, **optimization_state(optimizer, scheduler)}
        store.report(metrics, lambda out: save_checkpoint(unwrap(net).model, config["model_dir"], out, state),
                     name=f"step-{done}")
        total_tokens, total_seconds = total_tokens + tokens, total_seconds + seconds
        losses.reset()
        tokens, seconds = 0, 0.0
        if fail_after is not None and done >= fail_after:
            raise RuntimeError(f"injected failure after step {done}")
    return {"resumed_from": start, "tokens": total_tokens, "train_seconds": total_seconds, "world_size": world,
            "threads": torch.get_num_threads()}


def _restore(store: RayTrainStore, model_dir: str) -> tuple[torch.nn.Module, dict | None]:
    """The model and training state to go on from: the run's last checkpoint (a restarted or resumed run),
    else the input model and none."""
    from transformers import AutoModelForMaskedLM

    with store.latest() as checkpoint:
        model = AutoModelForMaskedLM.from_pretrained(checkpoint or model_dir, attn_implementation="sdpa")
        state = read_state(checkpoint, TRAINING_STATE, required=True)  # None without a checkpoint
    return model, state


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host to device without blocking the CPU, which runs ahead collating the next step."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
