"""The baseline method: see ``method``."""

from trainables.methods.baseline.method import Baseline
from trainables.method_spec import MethodSpec

SPEC = MethodSpec("baseline", Baseline)
