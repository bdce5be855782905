"""Registry of methods the shared loop can train, by name."""

from __future__ import annotations

from trainables.methods.base import Method
from trainables.methods.baseline import Baseline
from trainables.methods.btf import Btf
from trainables.methods.salt import Salt
from trainables.methods.self_training import SelfTraining
from trainables.methods.translate_train import TranslateTrain
from trainables.methods.xmixup import XMixup

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (Baseline, Btf, Salt, SelfTraining, TranslateTrain, XMixup)}


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}") from None
