"""X-Mixup's mixup ratio: how much of the source-aware state enters the target, per instance.

Translation quality is read from the cross-attention between target and source tokens
(Fomicheva et al. 2020): H(A) = -(1/I) Σ_i Σ_j A_ji log A_ji (Eq. 5), the mean entropy of the
attention distributions, taken in both directions (H(A) and H(Aᵀ), each row-normalised). Lower
entropy means a sharper alignment and a better translation. Then λ = λ0 · σ((H(A) + H(Aᵀ)) W + b)
with W and b trainable. The reference TensorFlow code never trains W and b (the layer is not
tracked by Keras), so λ stays 0.5 σ(H); ``freeze=True`` reproduces that (W = 1, b = 0, no gradient).
"""

from __future__ import annotations

import torch


def attention_entropy(scores: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """Mean entropy of softmax(scores) over the real query rows (and over heads), per instance.

    ``scores`` [B, I, J] or [B, heads, I, J] are the attention logits (q kᵀ / √d); ``query_mask``
    [B, I] and ``key_mask`` [B, J] mark real tokens (padding gets no attention and counts as no query).
    """
    if scores.dim() == 3:
        scores = scores[:, None]
    scores = scores.float().masked_fill(~key_mask.bool()[:, None, None, :], torch.finfo(torch.float32).min)
    log_attention = torch.log_softmax(scores, dim=-1)
    entropy = -(log_attention.exp() * log_attention).sum(-1)  # [B, heads, I]
    rows = query_mask.float()[:, None, :]
    return ((entropy * rows).sum(-1) / rows.sum(-1).clamp(min=1)).mean(-1)


class MixupRatio(torch.nn.Module):
    """λ = λ0 σ((H(A) + H(Aᵀ)) W + b), one value per instance."""

    def __init__(self, max_ratio: float, *, freeze: bool = False):
        super().__init__()
        self.max_ratio = max_ratio
        # Initialised as the reference code (kernel of ones, zero bias), so the two agree at step 0.
        self.weight = torch.nn.Parameter(torch.ones(1), requires_grad=not freeze)
        self.bias = torch.nn.Parameter(torch.zeros(1), requires_grad=not freeze)

    def forward(self, scores: torch.Tensor, target_mask: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """``scores`` [B, (heads,) I, J]: target-query x source-key logits. Returns λ [B]."""
        quality = (attention_entropy(scores, target_mask, source_mask)
                   + attention_entropy(scores.transpose(-1, -2), source_mask, target_mask))
        return self.max_ratio * torch.sigmoid(quality * self.weight + self.bias)
