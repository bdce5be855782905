"""Self-training's building blocks (2310.04726, "Zero-shot Cross-lingual Transfer without Parallel Corpus").

- ``thresholds``: the confidence threshold for hard pseudo-labels, chosen automatically on English dev.
- ``losses``: soft pseudo-labels trained with MSE, hard ones (above the threshold) with cross-entropy.
- ``voting``: K models vote; only agreed hard labels are kept.

Still to come (issue 5): the MARC and PAN-X tasks (token classification, seqeval F1), the BTF MLM
stage on Ray Train, pseudo-labelling on Ray Data, the recipe and the experiments.
"""
