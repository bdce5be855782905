"""Checks on a local model folder that several methods share: its content digest, and whether it has an MLM head."""

from __future__ import annotations

import hashlib
from pathlib import Path

_MODEL_FILE_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin")


class MlmHeadMissing(Exception):
    """The model has no trained masked-LM head. ``str()`` is one line for the user."""


def model_digest(model_dir: str | Path) -> str:
    """sha256 over the model folder's weights, config and tokenizer files (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.is_file() and path.suffix in _MODEL_FILE_SUFFIXES:
            digest.update(path.name.encode() + b"\0")
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def check_mlm_head(model_dir: str) -> None:
    """Raise ``MlmHeadMissing`` unless ``model_dir`` loads as a masked LM with every head weight."""
    import transformers
    from transformers import AutoModelForMaskedLM

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        _, info = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    except (ValueError, OSError, KeyError) as exc:
        raise MlmHeadMissing(f"model {model_dir} cannot be loaded as a masked language model "
                             f"({str(exc).splitlines()[0][:120]}); SALT predicts tokens with the MLM head: use a "
                             "pre-trained checkpoint such as bert-base-multilingual-cased") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = [key for key in info.get("missing_keys", ()) if not key.endswith("position_ids")]
    if missing:
        raise MlmHeadMissing(f"model {model_dir} has no trained masked-language-model head (missing {missing[0]}"
                             f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}); SALT predicts tokens "
                             "with it: use the pre-trained checkpoint, not a fine-tuned or encoder-only one")
