"""Per-method search spaces: one module per method (``SPACE``), looked up by method name.

A space module holds only the space; every default is the method's own (its typed ``Params`` in
``trainables.methods.<name>``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from search_spaces.spec import Dimension


@dataclass(frozen=True)
class MethodSpace:
    """What the search stage explores for a method."""

    space: dict[str, Dimension]


def load_space(module: str) -> MethodSpace:
    """The ``SPACE`` of a space module (a method's spec names it: ``search_spaces.<name>`` unless it says)."""
    return MethodSpace(dict(importlib.import_module(module).SPACE))


def get_space(method: str) -> MethodSpace:
    return load_space(f"search_spaces.{method}")
