"""Per-method search spaces and defaults: one module per method, looked up by method name."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from search_spaces.spec import Dimension


@dataclass(frozen=True)
class MethodSpace:
    """What the search stage explores for a method, and the method's paper defaults."""

    space: dict[str, Dimension]
    defaults: dict[str, Any]


def get_space(method: str) -> MethodSpace:
    module = importlib.import_module(f"search_spaces.{method}")
    return MethodSpace(dict(module.SPACE), dict(module.DEFAULTS))
