"""Search-space dimensions as small typed values.

A dimension prints the way a user writes it on the command line (``--space
learning_rate=loguniform(5e-6,5e-5)``), so the dry-run plan, MLflow params and the CLI all
speak one notation; ``to_tune`` turns it into the Ray Tune domain that ``OptunaSearch``
converts to an Optuna distribution.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any, Union

from ray import tune


@dataclass(frozen=True)
class _FloatRange:
    low: float
    high: float
    kind = ""  # the name the user writes, and Tune's sampler of the same name

    def to_tune(self):
        return getattr(tune, self.kind)(self.low, self.high)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.kind}({self.low:g}, {self.high:g})"


class LogUniform(_FloatRange):
    kind = "loguniform"


class Uniform(_FloatRange):
    kind = "uniform"


@dataclass(frozen=True)
class IntRange:
    """Integers from ``low`` to ``high``, both included."""

    low: int
    high: int

    def to_tune(self):
        return tune.randint(self.low, self.high + 1)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"int({self.low}, {self.high})"


@dataclass(frozen=True)
class Choice:
    values: tuple

    def to_tune(self):
        return tune.choice(list(self.values))

    def contains(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "choice(" + ", ".join(repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)
                                     for v in self.values) + ")"


Dimension = Union[LogUniform, Uniform, IntRange, Choice]

_SPEC = re.compile(r"^\s*(loguniform|uniform|int|choice)\s*\((.*)\)\s*$")


class SpecError(ValueError):
    """A dimension the user wrote cannot be parsed; the message is one line."""


def parse_dimension(text: str) -> Dimension:
    """Parse ``loguniform(a,b)``, ``uniform(a,b)``, ``int(a,b)`` or ``choice(x,y,...)``."""
    match = _SPEC.match(text)
    if not match:
        raise SpecError(f"{text!r} is not a dimension; write loguniform(a,b), uniform(a,b), int(a,b) or choice(x,y,...)")
    kind, body = match.groups()
    try:
        values = ast.literal_eval(f"({body},)") if body.strip() else ()
    except (ValueError, SyntaxError):
        raise SpecError(f"cannot read the values in {text!r}") from None
    if kind == "choice":
        if not values:
            raise SpecError("choice() needs at least one value")
        return Choice(tuple(values))
    if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values):
        raise SpecError(f"{kind}() takes two numbers, got {text!r}")
    low, high = values
    if not low < high:
        raise SpecError(f"{kind}({low}, {high}): low must be below high")
    if kind == "loguniform":
        if low <= 0:
            raise SpecError(f"loguniform needs positive bounds, got {low}")
        return LogUniform(float(low), float(high))
    if kind == "uniform":
        return Uniform(float(low), float(high))
    if not (float(low).is_integer() and float(high).is_integer()):
        raise SpecError(f"int() takes integers, got {text!r}")
    return IntRange(int(low), int(high))


def to_tune_space(space: dict[str, Dimension]) -> dict[str, Any]:
    return {name: dim.to_tune() for name, dim in space.items()}


def describe(space: dict[str, Dimension]) -> str:
    return ", ".join(f"{name}={dim}" for name, dim in space.items()) or "(nothing to search)"
