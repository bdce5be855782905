"""The registry of methods: one list of specs (``SPECS``), looked up by name.

A new method is a package ``trainables/methods/<name>/`` whose ``SPEC`` joins ``SPECS`` below,
or registers itself at run time with ``register(spec)`` from a plugin module named in
``XLT_SWEEP_PLUGINS`` (``module`` or ``module:function``, comma-separated). The sweep forwards
that variable to its Ray workers, which load the same plugins on their first lookup.
"""

from __future__ import annotations

import importlib
import os

from trainables.methods import baseline, btf, salt, self_training, translate_train, xmixup
from trainables.method_base import Method
from trainables.method_spec import MethodSpec

PLUGINS_ENV = "XLT_SWEEP_PLUGINS"

SPECS: list[MethodSpec] = [baseline.SPEC, btf.SPEC, salt.SPEC, self_training.SPEC, translate_train.SPEC, xmixup.SPEC]

_BY_NAME: dict[str, MethodSpec] = {spec.name: spec for spec in SPECS}
METHODS: dict[str, type[Method]] = {spec.name: spec.method for spec in SPECS}
_plugins_loaded = False


def register(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method at run time; returns ``spec``."""
    if spec.method.name != spec.name:
        raise ValueError(f"spec {spec.name!r} names a method class called {spec.method.name!r}")
    SPECS[:] = [s for s in SPECS if s.name != spec.name] + [spec]
    _BY_NAME[spec.name] = spec
    METHODS[spec.name] = spec.method
    return spec


def unregister(name: str) -> None:
    """Remove a method ``register`` added (tests)."""
    SPECS[:] = [s for s in SPECS if s.name != name]
    _BY_NAME.pop(name, None)
    METHODS.pop(name, None)


def load_plugins() -> None:
    """Import the modules named in ``XLT_SWEEP_PLUGINS`` (once); ``module:function`` also calls the function."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in filter(None, (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(","))):
        module, _, function = entry.partition(":")
        loaded = importlib.import_module(module)
        if function:
            getattr(loaded, function)()


def get_spec(name: str) -> MethodSpec:
    if name not in _BY_NAME:
        load_plugins()
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def get_method(name: str) -> type[Method]:
    return get_spec(name).method
