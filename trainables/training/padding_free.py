"""Padding-free training batches (``TrainConfig.padding_free``): every sequence of a batch laid end to end
in one row, no padding token in any layer, each sequence attending only to itself.

Why it is built this way, from what the installed libraries offer (transformers 5.23, torch 2.13):

* transformers' own mechanism for this, ``DataCollatorWithFlattening`` (one row plus ``position_ids`` that
  restart at 0), is read by its ``flash_attention_*`` kernels only, which need the ``flash-attn`` package (not
  a dependency; CUDA only); its ``sdpa`` and ``eager`` masks ignore the boundaries, so the sequences would
  attend to each other. And ``BertForSequenceClassification`` pools the first token of the *row*: one
  prediction for the whole packed batch. So the library's collator is not faithful for a sequence task.
* PyTorch's ``torch.nn.attention.varlen.varlen_attn`` takes the sequences' offsets but has no dropout (BERT
  trains with attention dropout 0.1) and runs on CUDA only.
* PyTorch's nested (jagged) tensors do both: ``scaled_dot_product_attention`` on a jagged batch runs the
  fused variable-length kernels on CUDA (flash / memory-efficient, dropout included) and an exact fallback
  on CPU. That is what this module plugs into BERT's attention, through transformers' own extension point
  (``AttentionInterface.register``): an attention function that, given a packed batch's offsets, attends
  within each sequence, and otherwise is plain SDPA (the evaluation's padded batches).

The loss is computed here rather than by the model's head, which would pool the row's first token: the
encoder's last layer is taken at each sequence's first token for the pooler and classifier (a sequence
task), or token by token (a token task, labels flattened alike). With dropout off the result equals the
padded batch's (tests/test_speed_settings.py); with dropout on it is the same distribution with other
draws. It applies to methods that train with the plain loss (``Method.trains_plain_loss``) on BERT-type
encoders (absolute positions from 0, a pooler and a ``classifier``), on one worker per trial: the packed
forward calls the encoder's modules directly, which DDP's forward would not see.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from trainables.labels import IGNORE_INDEX

ATTENTION = "xlt_packed"
OFFSETS = "cu_seq_lens_q"  # transformers' own name for a packed batch's offsets (FlashAttentionKwargs)
MAX_LENGTH = "max_length_q"
POSITION_IDS = "position_ids"
SUPPORTED_MODEL_TYPES = ("bert",)


class Flattening:
    """Wraps a padding collator: its (right-)padded batch becomes one row of the batch's real tokens.

    Keys: ``input_ids``, ``token_type_ids``, ``position_ids`` (each ``[1, tokens]``), the offsets of the
    sequences (``cu_seq_lens_q``, ``[batch + 1]``), the longest sequence (``max_length_q``, an int), the
    labels (one per sequence, or a token task's one per token, flattened alike) and ``attention_mask`` of ones
    (``[1, tokens]``: what the loop counts as the batch's non-padding tokens; not given to the model)."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]):
        self.collate = collate

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return flatten(self.collate(examples))


def flatten(batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The padded ``batch`` (right padding) as one row without padding; see ``Flattening``."""
    mask = batch["attention_mask"].bool()
    lengths = mask.sum(dim=1)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, dim=0)
    positions = torch.arange(mask.shape[1]).expand_as(mask)
    out: dict[str, Any] = {
        "input_ids": batch["input_ids"][mask].unsqueeze(0),
        POSITION_IDS: positions[mask].unsqueeze(0),
        "attention_mask": torch.ones(1, int(offsets[-1]), dtype=batch["attention_mask"].dtype),
        OFFSETS: offsets,
        MAX_LENGTH: int(lengths.max()),
    }
    if "token_type_ids" in batch:
        out["token_type_ids"] = batch["token_type_ids"][mask].unsqueeze(0)
    if "labels" in batch:
        labels = batch["labels"]
        out["labels"] = labels[mask] if labels.dim() == 2 else labels
    return out


def packed_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """BERT's attention on a packed row (``[1, heads, tokens, dim]``): each sequence attends within itself
    (jagged SDPA over the offsets); a batch without offsets goes to transformers' SDPA unchanged."""
    offsets = kwargs.get(OFFSETS)
    if offsets is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    max_length = kwargs.get(MAX_LENGTH)

    def jagged(x: torch.Tensor) -> torch.Tensor:  # [1, H, T, D] -> [B, H, j, D]
        return torch.nested.nested_tensor_from_jagged(x[0].transpose(0, 1), offsets=offsets,
                                                      max_seqlen=max_length).transpose(1, 2)

    out = F.scaled_dot_product_attention(jagged(query), jagged(key), jagged(value), dropout_p=dropout,
                                         scale=scaling)
    return out.transpose(1, 2).values().unsqueeze(0), None  # [1, T, H, D], as transformers' functions return


def register() -> None:
    """Make ``ATTENTION`` an attention implementation transformers knows (idempotent): packed rows as above,
    padded batches with SDPA's own mask."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, packed_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def unsupported_model(model: torch.nn.Module) -> str | None:
    """Why ``model`` cannot train padding-free (one line), or None when it can."""
    return unsupported_model_type(getattr(model.config, "model_type", ""))


def unsupported_model_type(model_type: str) -> str | None:
    """Why a model of ``model_type`` (its ``config.json``'s) cannot train padding-free, or None when it can: the
    sweep asks this of the model folder before any cluster work, the loop of the loaded model."""
    if model_type not in SUPPORTED_MODEL_TYPES:
        return (f"padding_free supports BERT-type encoders ({', '.join(SUPPORTED_MODEL_TYPES)}), not model type "
                f"{model_type!r}; drop padding_free from --set and --space")
    return None


def enable(model: torch.nn.Module) -> torch.nn.Module:
    """Switch ``model``'s attention to ``ATTENTION`` (the same weights; padded batches still take SDPA)."""
    register()
    model.set_attn_implementation(ATTENTION)
    return model


def packed_loss(model: torch.nn.Module, batch: dict[str, Any], *, token_labels: bool) -> torch.Tensor:
    """The plain fine-tuning loss (``Method.training_loss``) of a flattened batch: cross-entropy, mean over
    the sequences (a sequence task) or over the labelled tokens (a token task), as the model's head has it."""
    encoder = getattr(model, model.base_model_prefix)
    hidden = encoder(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"),
                     position_ids=batch[POSITION_IDS], **{OFFSETS: batch[OFFSETS], MAX_LENGTH: batch[MAX_LENGTH],
                                                          "cu_seq_lens_k": batch[OFFSETS],
                                                          "max_length_k": batch[MAX_LENGTH]}).last_hidden_state[0]
    labels = batch["labels"]
    if token_labels:
        features = hidden  # a token task: one label per token
    else:
        first = hidden[batch[OFFSETS][:-1]]  # each sequence's [CLS]
        features = encoder.pooler(first.unsqueeze(1))
    logits = model.classifier(model.dropout(features))
    return F.cross_entropy(logits.float(), labels.view(-1), ignore_index=IGNORE_INDEX)
