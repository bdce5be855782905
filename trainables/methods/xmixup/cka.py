"""Linear CKA between parallel source and target representations (X-Mixup Eq. 1, Table 7).

CKA(X, Y) = ||Yᵀ X||²_F / (||Xᵀ X||_F ||Yᵀ Y||_F) on column-centred X, Y [n examples, d], as in
Kornblith et al. (2019), whose "linear centered kernel alignment" the paper cites. The paper's
Eq. 1 prints squares on the denominator norms and no centring; with them CKA(X, X) would not be 1,
so we follow Kornblith's definition (``centered=False`` drops the centring only).
"""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor, *, centered: bool = True) -> float:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs parallel rows, got {x.shape[0]} and {y.shape[0]}")
    x, y = x.double(), y.double()
    if centered:
        x = x - x.mean(0, keepdim=True)
        y = y - y.mean(0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return float(cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)))
