"""The code's shape, held by tests: no module imports another module's private names, and no source
file outgrows one reading (the import contracts and ruff run beside these in the test command)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "trainables", "search_spaces", "smoke")
MAX_LINES = 400  # "about 400": a module a reader takes in at once


def _sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots if (REPO / root).exists() for p in (REPO / root).rglob("*.py"))


def _module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(path: Path, root: Path = REPO) -> list[str]:
    """``from <project module> import _name`` where the module is not the importer itself (``path`` lies
    under ``root``, the repository)."""
    own = _module_name(path, root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if node.module.split(".")[0] not in PACKAGES or node.module == own:
            continue
        found += [f"{path.relative_to(root)}:{node.lineno}: {node.module}.{alias.name}" for alias in node.names
                  if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_private_imports_are_found(tmp_path):
    """The check itself: a private import in a file is reported, a public one is not (the probe lives in a
    copy of the layout, not in the source tree, where the scan of the real sources runs at the same time)."""
    sample = tmp_path / "trainables" / "_architecture_probe.py"
    sample.parent.mkdir()
    sample.write_text("from trainables.tasks import get_task\nfrom orchestrator.cli import (\n    fail,\n"
                      "    _literal,\n)\n")
    assert private_imports(sample, tmp_path) == ["trainables/_architecture_probe.py:2: orchestrator.cli._literal"]


def test_no_module_imports_another_modules_private_names():
    offenders = [hit for path in _sources(*PACKAGES, "bench", "tests") for hit in private_imports(path)]
    assert not offenders, "private names imported across modules:\n" + "\n".join(offenders)


def test_no_source_file_outgrows_one_reading():
    long = {str(p.relative_to(REPO)): n for p in _sources(*PACKAGES, "bench")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them by job): {long}"
