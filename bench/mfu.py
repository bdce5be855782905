"""Model FLOPs utilisation: the model's training FLOPs per second over the device's dense bf16 peak.

Training FLOPs of one sample of ``T`` non-padding tokens, for a BERT of ``L`` layers, hidden size ``h`` and
``N`` parameters outside its embeddings (the PaLM paper's accounting, appendix B)::

    6 N T  +  12 L h T^2

``6 N T``: every weight is one multiply-add (2 FLOPs) per token forward and twice that backward;
``12 L h T^2``: the attention scores (Q K^T) and their weighted sum (A V), 2 x 2 h T^2 FLOPs per layer
forward, x 3 with the backward pass. Over a data set the per-sample figure is ``6 N E[T] + 12 L h E[T^2]``
(the mean of the squared lengths, not the squared mean: the attention term of a sample grows with its own
length). Padding is not counted (it is not the model's work), nor are embedding look-ups, the softmax,
norms and the optimizer step: MFU says how much of the peak went into the model's own arithmetic.
"""

from __future__ import annotations

import re

# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, from NVIDIA's datasheets (whose tables mark the sparse
# figure, about twice these, with an asterisk):
# - "NVIDIA H100 Tensor Core GPU" datasheet: BF16 1,979* (SXM), 1,671* (NVL), 1,513* (PCIe) TFLOPS;
# - "NVIDIA H200 Tensor Core GPU" datasheet: BF16 1,979* (SXM), 1,671* (NVL) TFLOPS;
# - "NVIDIA A100 Tensor Core GPU" datasheet: BF16 312 | 624* TFLOPS;
# - "NVIDIA L40S GPU" datasheet: BF16 362.05 | 733* TFLOPS; "NVIDIA L4 Tensor Core GPU": BF16 121 | 242* TFLOPS;
# - "NVIDIA A10 Tensor Core GPU" datasheet: BF16 125 | 250* TFLOPS.
# Rules are matched in order against the words of ``torch.cuda.get_device_name()`` (split at spaces and
# dashes, upper case), so "A10" does not match an "A100" or an "A10G", nor "L4" an "L40S". The H100 SXM
# calls itself "NVIDIA H100 80GB HBM3": a plain "H100" is the SXM part.
PEAK_BF16: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIE"), 756e12),
    (("H100", "NVL"), 835e12),
    (("H200", "NVL"), 835e12),
    (("H100",), 989e12),
    (("H200",), 989e12),
    (("A100",), 312e12),
    (("L40S",), 362e12),
    (("L4",), 121e12),
    (("A10",), 125e12),
)
NO_PEAK = "n/a (no peak figure)"


def peak_bf16(device_name: str) -> float | None:
    """The device's dense bf16 peak in FLOP/s, or None when the table has no figure for it (CPUs included)."""
    words = set(re.split(r"[\s\-_]+", device_name.upper()))
    for needed, peak in PEAK_BF16:
        if all(word in words for word in needed):
            return peak
    return None


def flops_per_sample(non_embedding_params: int, layers: int, hidden: int, mean_tokens: float,
                     mean_squared_tokens: float) -> float:
    """Training FLOPs of one sample: ``6 N E[T] + 12 L h E[T^2]`` (module docstring)."""
    return 6.0 * non_embedding_params * mean_tokens + 12.0 * layers * hidden * mean_squared_tokens


def utilisation(samples_per_second: float, flops_per_sample_: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation as a fraction of ``peak`` (None without a peak)."""
    if peak is None or peak <= 0:
        return None
    return samples_per_second * flops_per_sample_ / peak
