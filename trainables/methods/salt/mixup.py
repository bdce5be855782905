"""SALT's online embedding mixup, as a forward hook on the model's input word embeddings.

For every substituted token, h_i = r ⊙ h_s + (1 - r) ⊙ h_t, with h_s the embedding of the original
token, h_t that of the substituted one, and r_j ~ U[0, 1] drawn independently per embedding
dimension, fresh at every training step (paper section 2.2). Positions that were not substituted
keep their embedding. Being a hook on the embedding module, it runs inside the model's forward:
under DDP and bf16 autocast like any other layer, with gradients to the shared embedding matrix
through both terms.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F

SCOPES = ("instance", "token")


class EmbeddingMixup:
    """Mixes original and substituted token embeddings while ``mixing(source_ids)`` is active.

    ``scope="instance"`` (the paper: "sampled in each step of training for each instance") draws one
    r vector per example, shared by its substituted tokens; ``"token"`` draws one per token.
    """

    def __init__(self, embedding: torch.nn.Embedding, *, scope: str = "instance"):
        if scope not in SCOPES:
            raise ValueError(f"mixup scope must be one of {SCOPES}, got {scope!r}")
        self.embedding, self.scope = embedding, scope
        self._source: torch.Tensor | None = None
        self.handle = embedding.register_forward_hook(self._hook)

    @contextlib.contextmanager
    def mixing(self, source_ids: torch.Tensor) -> Iterator[None]:
        self._source = source_ids
        try:
            yield
        finally:
            self._source = None

    def _hook(self, module: torch.nn.Embedding, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if self._source is None:
            return None  # evaluation, or a batch without substitutions
        input_ids = inputs[0]
        if input_ids.shape != self._source.shape:
            raise ValueError(f"source ids {tuple(self._source.shape)} do not match input ids {tuple(input_ids.shape)}")
        substituted = (input_ids != self._source).unsqueeze(-1)
        source = F.embedding(self._source, module.weight, module.padding_idx)  # not module(): no re-entry
        shape = (output.shape[0], 1, output.shape[-1]) if self.scope == "instance" else output.shape
        r = torch.rand(shape, device=output.device, dtype=output.dtype)
        return torch.where(substituted, r * source + (1 - r) * output, output)
