"""A refused command changes nothing (issue 20 item 3): the working directory, the storage and the tracking
store are as they were, file for file (paths, sizes, modification times), for every kind of bad input the
sweep refuses before Ray starts.

Each case runs the CLI's entry point in-process in an empty working directory (the default storage
``./sweeps/<experiment>`` and tracking store ``./mlflow.db`` are inside it). Most start from a storage
seeded with the smoke assets (tests/smoke_cache.py), as a user's second command does; the cases marked
``fresh`` start from nothing, so the sweep builds the smoke model or data and tokenises before it can
refuse (the issue's SALT case), and all of that must go again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.sweep import main
from orchestrator.tracking_server import WAIT_ENV
from tests.smoke_cache import seed_smoke_cache


def tree(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: (kind, size, mtime_ns) of files, (kind, mtime_ns) of folders."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = ("dir", path.stat().st_mtime_ns)
        for name in files:
            path = Path(folder) / name
            stat = path.lstat()
            found[str(path.relative_to(root))] = ("file", stat.st_size, stat.st_mtime_ns)
    found["."] = ("dir", root.stat().st_mtime_ns)
    return found


def _encoder_only(smoke_model: str, where: Path) -> str:
    """The smoke encoder without its MLM head (a fine-tuned or sentence-embedding checkpoint)."""
    from transformers import AutoTokenizer, BertModel

    BertModel.from_pretrained(smoke_model).save_pretrained(where)
    AutoTokenizer.from_pretrained(smoke_model).save_pretrained(where)
    return str(where)


def _word_lists_without_targets(where: Path) -> str:
    where.mkdir()
    (where / "en.txt").write_text("house\nriver\n")
    return str(where)


def _empty_translations(where: Path) -> str:
    (where / "XNLI" / "translate-train").mkdir(parents=True)
    return str(where)


def _started_sweep(cwd: Path) -> None:
    """An unfinished smoke sweep's state, started with seeds 1,2 (what --resume reads)."""
    from orchestrator import cli
    from orchestrator.state import SweepState

    sweep_dir = cwd / "sweeps" / "baseline_pawsx" / "20260101-000000"
    cfg = cli.parse(["baseline_pawsx", "--profile", "smoke", "--seeds", "1,2"])
    SweepState(sweep_id=sweep_dir.name, experiment="baseline_pawsx", config=cfg.to_dict()).save(sweep_dir)


# (id, arguments ({inputs} is a folder outside the working directory), expected in the line, seed the storage?)
CASES = [
    ("unknown-experiment", ["no_such_experiment"], "unknown experiment", False),
    ("bad-value", ["baseline_pawsx", "--profile", "smoke", "--set", "learning_rate=-1"], "learning_rate must be > 0",
     False),
    ("unknown-search-key", ["baseline_pawsx", "--space", "no_such_knob=uniform(0,1)"], "has no setting 'no_such_knob'",
     False),
    ("model-not-there", ["baseline_pawsx", "--model", "{inputs}/no-model"], "no such directory", False),
    ("data-not-there", ["baseline_pawsx", "--profile", "smoke", "--data-dir", "{inputs}/no-data"], "--data-dir",
     "fresh"),
    ("tracking-unreachable", ["baseline_pawsx", "--profile", "smoke", "--tracking-uri", "http://127.0.0.1:9"],
     "did not answer", True),
    ("tracking-folder-missing", ["baseline_pawsx", "--profile", "smoke", "--tracking-uri",
                                 "sqlite:///{inputs}/nowhere/mlflow.db"], "does not exist", True),
    ("nothing-to-resume", ["baseline_pawsx", "--profile", "smoke", "--resume"], "no unfinished baseline_pawsx sweep",
     True),
    ("resume-other-settings", ["baseline_pawsx", "--profile", "smoke", "--seeds", "1,2,3", "--resume"],
     "it was started with seeds=[1, 2]", "started"),
    ("best-from-unknown", ["baseline_pawsx", "--profile", "smoke", "--best-from", "20990101-000000"],
     "20990101-000000", True),
    ("salt-no-mlm-head", ["salt_pawsx", "--profile", "smoke", "--model", "{encoder}", "--salt-wordlists",
                          "{wordlists}"], "no trained masked-language-model head", "fresh"),
    ("salt-no-word-list", ["salt_pawsx", "--profile", "smoke", "--salt-wordlists", "{short_lists}",
                           "--salt-languages", "fr,de"], "no fr.txt, de.txt in --salt-wordlists", True),
    ("xmixup-no-translations", ["xmixup_xnli", "--profile", "smoke", "--xmixup-translations", "{translations}"],
     "X-Mixup translations missing under", True),
    ("xmixup-layers", ["xmixup_pawsx", "--profile", "smoke", "--xmixup-layers", "1,4"],
     "--xmixup-layers 4: the encoder has 2 layers", True),
    ("btf-languages", ["btf_marc", "--profile", "smoke", "--set", "train_languages=de,xx"],
     "train_languages xx: not target languages of marc", False),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, smoke_model, smoke_root) -> dict[str, str]:
    from smoke import build_smoke_wordlists

    root = tmp_path_factory.mktemp("refusal-inputs")
    return {"inputs": str(root), "encoder": _encoder_only(smoke_model, root / "encoder"),
            "wordlists": str(build_smoke_wordlists(smoke_root)),
            "short_lists": _word_lists_without_targets(root / "lists"),
            "translations": _empty_translations(root / "translations")}


@pytest.mark.parametrize("case_id, args, expected, setup", CASES, ids=[case[0] for case in CASES])
def test_a_refused_command_changes_nothing(case_id, args, expected, setup, inputs, tmp_path, monkeypatch, capsys):
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # An unanswering tracking server is refused after this wait instead of the default 120 s (the wait and its line
    # are tests/test_cli.py's and tests/test_tracking_server.py's): the refusal and what it leaves are the same.
    monkeypatch.setenv(WAIT_ENV, "4")
    args = [arg.format(**inputs) for arg in args]
    if setup is True:
        seed_smoke_cache(cwd, *args)
    elif setup == "started":
        seed_smoke_cache(cwd, *args[:3])
        _started_sweep(cwd)
    before = tree(cwd)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(args)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err, err
    after = tree(cwd)
    assert after == before, {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
                             "changed": sorted(k for k in set(after) & set(before) if after[k] != before[k])}
    if setup == "fresh":
        assert not (cwd / "sweeps").exists() and not (cwd / "mlflow.db").exists()
