"""Finding and loading the encoder: a hub id or a local Hugging Face directory.

The sweep driver resolves ``--model`` to a local directory once (``resolve_model``), before any
Ray work starts, so workers never touch the network and an unreachable hub fails fast with one
line. Workers then load from that directory (``load_classifier``).
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import torch

# Files a fine-tuning run needs; other weight formats (TF, Flax, ONNX) are not downloaded.
_MODEL_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]


class ModelUnavailable(Exception):
    """The model cannot be found locally or fetched. ``str()`` is one line for the user."""


def resolve_model(model: str, *, timeout_s: float = 20.0) -> str:
    """Return a local directory holding ``model`` (a hub id or a local HF-format directory).

    Order: an existing directory; the local Hugging Face cache (no network); the hub, whose
    reachability is probed with a bounded wait before downloading.
    """
    local = local_model(model)
    if local is not None:
        return local

    import huggingface_hub

    _probe_hub(model, timeout_s)
    local = huggingface_hub.snapshot_download(model, allow_patterns=_MODEL_FILES)
    if not any(Path(local).glob("*.safetensors")):
        local = huggingface_hub.snapshot_download(model, allow_patterns=_MODEL_FILES + ["pytorch_model.bin"])
    return local


def local_model(model: str) -> str | None:
    """``model``'s directory on this machine, without the network: a local HF-format directory, or a hub id's
    snapshot in the local Hugging Face cache; None when it would have to be downloaded. ``ModelUnavailable`` for
    a path that is not a model directory."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"--model {model}: directory has no config.json; pass a Hugging Face "
                                   "model directory (save_pretrained output) or a hub id")
        return str(path.resolve())
    if model.startswith((".", "/", "~")) or model.count("/") > 1:  # a path, not an "org/name" id
        raise ModelUnavailable(f"--model {model}: no such directory")

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return huggingface_hub.snapshot_download(model, allow_patterns=_MODEL_FILES, local_files_only=True)
    except LocalEntryNotFoundError:
        return None


def _probe_hub(model: str, timeout_s: float) -> None:
    """Raise ``ModelUnavailable`` unless the hub answers for ``model`` within ``timeout_s``."""
    import huggingface_hub

    def probe() -> None:
        huggingface_hub.HfApi().model_info(model, timeout=timeout_s)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(probe).result(timeout=timeout_s + 1)
    except Exception as exc:  # network error, timeout, unknown repo
        reason = type(exc).__name__ if isinstance(exc, concurrent.futures.TimeoutError) else str(exc).splitlines()[0]
        raise ModelUnavailable(
            f"model {model!r} is not in the local Hugging Face cache and the hub cannot be reached ({reason[:120]}); "
            f"download it elsewhere (hf download {model}) and pass --model /path/to/that/directory"
        ) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def load_classifier(model_dir: str, num_labels: int, *, seed: int, kind: str = "sequence") -> torch.nn.Module:
    """A classifier on top of the encoder; the new head is initialised from ``seed``.

    ``kind`` is the task's (``TaskSpec.kind``): ``"sequence"``, one prediction per example from the
    pooled first token; ``"token"``, one per sub-word (NER; the loss skips labels of -100).
    SDPA attention is asked for explicitly: it is the fused attention kernel on GPU and the
    reference implementation's equal on CPU.
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = {"sequence": AutoModelForSequenceClassification, "token": AutoModelForTokenClassification}
    if kind not in auto:
        raise ValueError(f"kind must be one of {', '.join(auto)}, got {kind!r}")
    torch.manual_seed(seed)
    return auto[kind].from_pretrained(model_dir, num_labels=num_labels, attn_implementation="sdpa")
