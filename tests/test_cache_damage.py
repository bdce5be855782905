"""A cache entry damaged after it was published is rebuilt with one line, never used (issue 20 item 4).

Every kind of cache is damaged for real (a file truncated, half of an entry's files deleted) and then read
through its ordinary read path, which must say ``cache entry X is damaged (...): rebuilding`` and hand back
an intact entry equal to the first build. The BTF checkpoints' case is in tests/test_btf.py (it reuses that
module's Ray Train job). The entries here are built in each test's own folder: the session's shared smoke
assets are hard-linked into sweeps' storages (tests/smoke_cache.py), so damaging them would damage those.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from smoke import build_smoke_data, build_smoke_model, build_smoke_translations, build_smoke_wordlists
from trainables.cache_manifest import MANIFEST_FILE, SAMPLE_BYTES, check_entry, usable_entry, write_manifest
from trainables.data import load_raw, load_tokenized, tokenize_cached
from trainables.tasks import get_task


def _files(folder: Path) -> dict[str, str]:
    """Every file's sha256, the manifest left out: what a rebuild must give back."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST_FILE}


def _listed(folder: Path) -> list[Path]:
    return [folder / name for name in json.loads((folder / MANIFEST_FILE).read_text())["files"]]


def _biggest(folder: Path) -> Path:
    return max(_listed(folder), key=lambda path: path.stat().st_size)


def truncate(path: Path) -> tuple[int, int]:
    """Cut ``path`` to half its size (as a copy that ran out of disk leaves it); returns (new, old) size."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    return size // 2, size


def delete_half(folder: Path) -> list[Path]:
    """Delete every other file the manifest lists (a half-finished ``rm -r``)."""
    gone = _listed(folder)[::2]
    for path in gone:
        path.unlink()
    return gone


def _damaged_line(out: str, folder: Path) -> str:
    lines = [line for line in out.splitlines() if "is damaged" in line]
    assert len(lines) == 1, out
    assert lines[0].startswith(f"cache entry {folder} is damaged (") and lines[0].endswith("): rebuilding"), lines[0]
    return lines[0]


# -- the manifest itself ----------------------------------------------------------------------------------

def test_the_manifest_names_what_is_wrong(tmp_path):
    entry = tmp_path / "entry"
    (entry / "sub").mkdir(parents=True)
    (entry / "small.json").write_text('{"a": 1}')
    (entry / "sub" / "big.bin").write_bytes(os.urandom(3 * SAMPLE_BYTES))
    write_manifest(entry, "fmt-v1")
    assert check_entry(entry, "fmt-v1") is None
    assert check_entry(entry, "fmt-v2") == "format 'fmt-v1', expected 'fmt-v2'"
    (entry / "reader-side-file.arrow").write_bytes(b"x")  # a reader's own file is not damage
    assert check_entry(entry, "fmt-v1") is None

    big = entry / "sub" / "big.bin"
    data = big.read_bytes()
    big.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, last byte flipped: the sampled tail
    assert check_entry(entry, "fmt-v1") == "file sub/big.bin: content differs from its manifest"
    big.write_bytes(data)
    assert truncate(big) == (3 * SAMPLE_BYTES // 2, 3 * SAMPLE_BYTES)
    assert check_entry(entry, "fmt-v1") == f"file sub/big.bin: size {3 * SAMPLE_BYTES // 2}, expected {3 * SAMPLE_BYTES}"
    (entry / "small.json").unlink()
    assert check_entry(entry, "fmt-v1") == "1 of 2 files missing: small.json"
    (entry / MANIFEST_FILE).unlink()
    assert check_entry(entry, "fmt-v1") == f"no {MANIFEST_FILE}: written before manifests or never finished"
    lines: list[str] = []
    assert not usable_entry(entry, "fmt-v1", log=lines.append)
    assert lines == [f"cache entry {entry} has no manifest (written before manifests, or never finished): rebuilding"]
    assert not usable_entry(tmp_path / "absent", "fmt-v1", log=lines.append) and len(lines) == 1  # absent: quiet


# -- tokenised data -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pawsx_raw(smoke_root):
    task = get_task("pawsx")
    return task, load_raw(task, str(build_smoke_data(task, smoke_root)), languages=("en", "de"))


@pytest.mark.parametrize("damage", ["truncate", "delete_half"])
def test_a_damaged_tokenized_entry_is_rebuilt(damage, pawsx_raw, smoke_model, tmp_path, capsys):
    task, raw = pawsx_raw
    path = tokenize_cached(raw, task, smoke_model, 64, tmp_path)
    before, rows = _files(path), {name: len(split) for name, split in load_tokenized(path).items()}
    capsys.readouterr()
    if damage == "truncate":
        victim = _biggest(path)
        new, old = truncate(victim)
        expected = f"file {victim.relative_to(path)}: size {new}, expected {old}"
    else:
        gone = delete_half(path)
        expected = f"{len(gone)} of {len(before)} files missing"
    again = tokenize_cached(raw, task, smoke_model, 64, tmp_path)
    line = _damaged_line(capsys.readouterr().out, path)
    assert expected in line
    assert again == path and check_entry(path, json.loads((path / MANIFEST_FILE).read_text())["format"]) is None
    assert _files(path) == before  # the same bytes as the first build
    assert {name: len(split) for name, split in load_tokenized(path).items()} == rows
    assert not list(tmp_path.glob("tokenized/.*"))  # no scratch or moved-aside copy is left
    tokenize_cached(raw, task, smoke_model, 64, tmp_path)
    assert "is damaged" not in capsys.readouterr().out  # intact again: a quiet hit


# -- smoke assets ---------------------------------------------------------------------------------------------

SMOKE_BUILDS = {
    "model": lambda root: build_smoke_model(root),
    "data": lambda root: build_smoke_data(get_task("pawsx"), root),
    "wordlists": lambda root: build_smoke_wordlists(root),
    "translations": lambda root: build_smoke_translations(get_task("pawsx"), root),
}


@pytest.mark.parametrize("kind", list(SMOKE_BUILDS))
def test_a_damaged_smoke_asset_is_rebuilt(kind, tmp_path, capsys):
    build = SMOKE_BUILDS[kind]
    path = build(tmp_path)
    before = _files(path)
    capsys.readouterr()
    victim = _biggest(path)
    new, old = truncate(victim)
    assert build(tmp_path) == path
    line = _damaged_line(capsys.readouterr().out, path)
    assert f"file {victim.relative_to(path)}: size {new}, expected {old}" in line
    assert _files(path) == before
    if kind == "data":  # and half of its files gone
        delete_half(path)
        assert build(tmp_path) == path
        assert "files missing" in _damaged_line(capsys.readouterr().out, path)
        assert _files(path) == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # nothing moved aside is left


# -- SALT's candidate scan (Ray Data) -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # two Ray Data scans: ~90 s on 2 busy cores
def test_a_damaged_salt_scan_is_rebuilt(ray_session, smoke_root, smoke_model, tmp_path):
    from tests.salt_scan_setup import smoke_scan
    from trainables.methods.salt.scan import SCAN_FORMAT, is_cached, scan_cached

    plan, train = smoke_scan("xnli", ("en", "fr"), 40, 1, smoke_root, smoke_model)
    lines: list[str] = []

    def scan():
        return scan_cached(plan, train, tmp_path, batch_size=16, gpus_per_actor=0, concurrency=1, log=lines.append)

    first = scan()
    assert not first.hit and is_cached(plan, tmp_path)
    victim = next(path for path in _listed(first.path) if path.suffix == ".parquet")
    new, old = truncate(victim)
    assert not is_cached(plan, tmp_path)  # quiet: the scan itself says it
    lines.clear()
    again = scan()
    damaged = [line for line in lines if "is damaged" in line]
    assert damaged == [f"cache entry {first.path} is damaged (file {victim.name}: size {new}, expected {old}): "
                       "rebuilding"]
    assert not again.hit and again.path == first.path and check_entry(again.path, SCAN_FORMAT) is None
    assert sorted(_rows(again.path)) == list(range(40)) and again.meta["rows"] == 40  # every example, once
    assert scan().hit


def _rows(folder: Path) -> list[int]:
    import pyarrow.parquet as pq

    return [row for path in sorted(folder.glob("*.parquet")) for row in pq.read_table(path).column("row").to_pylist()]
