"""X-Mixup's two-stream encoder: source and target encoded side by side, mixed inside layer l.

Wraps a Hugging Face sequence classifier (BERT / mBERT or XLM-R, any depth) without copying
any of its weights. Both sequences run through the same embeddings and layers 1..l-1. In layer
l (1-based, the paper's numbering: l = 1 mixes in the first layer), after the self-attention
sub-layer (attention, W_O, residual and LayerNorm) has given h_S and h_T:

    h_T|S = MultiHead(h_T, h_S, h_S)        the layer's own query/key/value and W_O (Eq. 3)
    h~_T  = LN(λ h_T|S + (1 - λ) h_T)       LN is the sub-layer's own LayerNorm (Eq. 4)

then the layer's feed-forward block and layers l+1.. run on h~_T (target) and h_S (source). λ
is ``MixupRatio`` (Eq. 5, from the cross-attention's own probabilities) or the constant λ0.
This is where the reference code mixes too (``layer_mixup.py``: after the attention output,
the same attention layer with key/value from the source, its LayerNorm on the mix); it
computes the cross-attention twice per step, we once.

The classification head is the model's own (BERT: pooler + classifier on [CLS]; XLM-R: its
classification head), so a wrapped model and the plain baseline differ only by the mixing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainables.config import ConfigError
from trainables.paired import SideInputs, mean_pool
from trainables.methods.xmixup.ratio import MixupRatio


@dataclass
class MixupOutput:
    target_logits: torch.Tensor  # [B, C]
    target_repr: torch.Tensor  # [B, H] mean-pooled last layer
    source_logits: torch.Tensor | None = None
    source_repr: torch.Tensor | None = None
    ratio: torch.Tensor | None = None  # λ per instance [B]


class XMixupModel(nn.Module):
    """The wrapped classifier plus λ's two trainable scalars (W, b); nothing else is added."""

    def __init__(self, classifier: nn.Module, *, mixup_layer: int, max_ratio: float, ratio: str = "entropy",
                 freeze_ratio: bool = False):
        super().__init__()
        self.classifier = classifier
        self.encoder_model = getattr(classifier, classifier.base_model_prefix)
        self.layers = self.encoder_model.encoder.layer
        if not 1 <= mixup_layer <= len(self.layers):
            raise ConfigError(f"mixup_layer must be in 1..{len(self.layers)} (the encoder's layers), got {mixup_layer}")
        self.mixup_layer = mixup_layer
        self.max_ratio = max_ratio
        # "constant" is Table 5's λ = λ0 ablation: no translation-quality term at all.
        self.ratio = MixupRatio(max_ratio, freeze=freeze_ratio) if ratio == "entropy" else None

    # -- the pieces of the wrapped model ----------------------------------------------------------
    def _embed(self, side: SideInputs) -> torch.Tensor:
        return self.encoder_model.embeddings(input_ids=side.input_ids, token_type_ids=side.token_type_ids)

    def _mask(self, hidden: torch.Tensor, side: SideInputs):
        """The attention mask in the format the model's attention implementation (SDPA / eager) expects."""
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.encoder_model.config, inputs_embeds=hidden,
                                         attention_mask=side.attention_mask)

    def head(self, sequence_output: torch.Tensor) -> torch.Tensor:
        """The classifier's own head on the last layer's states."""
        pooler = getattr(self.encoder_model, "pooler", None)
        if pooler is not None and hasattr(self.classifier, "dropout"):  # BertForSequenceClassification
            return self.classifier.classifier(self.classifier.dropout(pooler(sequence_output)))
        return self.classifier.classifier(sequence_output)  # XLM-R / RoBERTa: head reads <s> itself

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, target: SideInputs, source: SideInputs | None = None, *, mix: bool = True) -> MixupOutput:
        """With a source: the two-stream mixup forward. Without: the plain classifier on the target.

        ``mix=False`` (Table 5 w/o mixup): both sides, each the plain classifier alone; λ = 0 (nothing mixed).
        """
        if source is None:
            hidden = self._run_layers(self._embed(target), target, 0, len(self.layers))
            return MixupOutput(self.head(hidden), mean_pool(hidden, target.attention_mask))
        if not mix:
            alone_t, alone_s = self(target), self(source)
            return MixupOutput(alone_t.target_logits, alone_t.target_repr, alone_s.target_logits, alone_s.target_repr,
                               torch.zeros(target.input_ids.shape[0], device=target.input_ids.device))
        h_t, h_s = self._embed(target), self._embed(source)
        below = self.mixup_layer - 1
        h_t = self._run_layers(h_t, target, 0, below)
        h_s = self._run_layers(h_s, source, 0, below)
        h_t, h_s, ratio = self._mix_layer(self.layers[below], h_t, target, h_s, source)
        h_t = self._run_layers(h_t, target, below + 1, len(self.layers))
        h_s = self._run_layers(h_s, source, below + 1, len(self.layers))
        return MixupOutput(self.head(h_t), mean_pool(h_t, target.attention_mask),
                           self.head(h_s), mean_pool(h_s, source.attention_mask), ratio)

    def _run_layers(self, hidden: torch.Tensor, side: SideInputs, start: int, stop: int) -> torch.Tensor:
        if start >= stop:
            return hidden
        mask = self._mask(hidden, side)
        for layer in self.layers[start:stop]:
            hidden = layer(hidden, mask)
        return hidden

    def _mix_layer(self, layer: nn.Module, h_t: torch.Tensor, target: SideInputs, h_s: torch.Tensor,
                   source: SideInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attention = layer.attention
        a_t = attention(h_t, self._mask(h_t, target))[0]  # h_T: self-attention sub-layer of the target
        a_s = attention(h_s, self._mask(h_s, source))[0]  # h_S
        context, scores = cross_attention(attention.self, a_t, a_s, source.attention_mask)
        cross = attention.output.dropout(attention.output.dense(context))  # W_O: h_T|S
        if self.ratio is None:
            ratio = torch.full((h_t.shape[0],), self.max_ratio, device=h_t.device, dtype=torch.float32)
        else:
            ratio = self.ratio(scores, target.attention_mask, source.attention_mask)
        lam = ratio.to(cross.dtype)[:, None, None]
        mixed = attention.output.LayerNorm(lam * cross + (1 - lam) * a_t)
        return layer.feed_forward_chunk(mixed), layer.feed_forward_chunk(a_s), ratio


def cross_attention(self_attention: nn.Module, queries: torch.Tensor, keys: torch.Tensor,
                    key_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MultiHead(queries, keys, keys) with a self-attention module's own projections (before W_O).

    Returns the context [B, I, H*d] and the scaled scores [B, heads, I, J] (unmasked logits, for
    the entropy). Written out rather than calling the module so the probabilities are at hand;
    it is the same computation as the module's eager path (tested against it).
    """
    batch, n_query, _ = queries.shape
    heads, size = self_attention.num_attention_heads, self_attention.attention_head_size

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, -1, heads, size).transpose(1, 2)

    q = split(self_attention.query(queries))
    k = split(self_attention.key(keys))
    v = split(self_attention.value(keys))
    scores = (q @ k.transpose(-1, -2)) * getattr(self_attention, "scaling", size ** -0.5)
    masked = scores.masked_fill(~key_mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    probs = torch.softmax(masked.float(), dim=-1).to(v.dtype)
    probs = self_attention.dropout(probs)
    context = (probs @ v).transpose(1, 2).reshape(batch, n_query, heads * size)
    return context, scores
