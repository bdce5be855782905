"""A cache entry's manifest: what its files were when it was published, checked before the entry is used.

Every content-addressed cache (tokenised data, SALT scans, BTF checkpoints and corpus, the smoke assets)
is built aside and renamed into place (``trainables.publish``), so a build that dies leaves nothing. An
entry damaged *afterwards* (a truncated Parquet file, a half-deleted folder, a copy that ran out of disk)
would still be trusted and fail later, in a worker, or worse train on half the data. So each entry gets a
manifest, ``.xlt-manifest.json``, written last into the built folder before it is published:

* ``format``: the cache kind's own format constant (``TOKENIZED_FORMAT_VERSION``, ``SCAN_FORMAT``, ...),
  i.e. the code version that matters for the entry's layout. Not the git commit (it changes with every
  commit and would throw away every cache for nothing); the package version is recorded beside it for
  diagnosis (``writer``) but not compared, for the same reason.
* ``files``: for every file (relative path) its size and a blake2b digest of a **sample** of its bytes: the
  whole file up to ``2 * SAMPLE_BYTES``, else its first and last ``SAMPLE_BYTES`` (64 KiB each).

Why sizes and a sample rather than a digest of every byte: the check runs at every sweep start for every
entry the sweep uses, and entries are large (mBERT's BTF checkpoints ~0.7 GB per step, XNLI's tokenised
train split ~0.3 GB), often on NFS; hashing them all would cost minutes per start. What damages an entry in
practice changes its files' set, sizes or ends: a file deleted or truncated, a folder half deleted, a
write cut short by a full disk (a short file, or one whose tail is zeros). Sizes catch most of it with one
``stat`` per file; the sampled digest catches a file overwritten in place at either end (reads of 128 KiB
per file: milliseconds). A change in the middle of a large file with its size kept is not detected; that
is bit rot, for the file system's checksums.

An entry without a manifest (written before manifests existed, or not a finished entry) is not trusted
either: it is rebuilt once, like a damaged one. ``check_entry`` says what is wrong in one line;
``usable_entry`` is what a cache's read path calls: it prints ``cache entry X is damaged (...): rebuilding``
and returns False, and the caller rebuilds the entry and publishes it over the damaged one (``publish_dir``
with ``stale=``, ``damaged_or_absent``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

MANIFEST_FILE = ".xlt-manifest.json"
MANIFEST_VERSION = "xlt-cache-manifest-v1"
SAMPLE_BYTES = 64 * 1024
NO_MANIFEST = f"no {MANIFEST_FILE}: written before manifests or never finished"


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("xlt-sweep")
    except Exception:  # noqa: BLE001 - not installed (a bare checkout on PYTHONPATH): only a diagnostic
        return "unknown"


def sample_digest(path: Path, size: int) -> str:
    """blake2b of the whole file when it is small, else of its first and last ``SAMPLE_BYTES``."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        if size <= 2 * SAMPLE_BYTES:
            digest.update(handle.read())
        else:
            digest.update(handle.read(SAMPLE_BYTES))
            handle.seek(size - SAMPLE_BYTES)
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.name != MANIFEST_FILE)


def write_manifest(folder: str | Path, cache_format: str) -> Path:
    """Record every file of the finished, not yet published ``folder``; call it last, just before publishing."""
    folder = Path(folder)
    files = {}
    for path in _files(folder):
        size = path.stat().st_size
        files[path.relative_to(folder).as_posix()] = {"size": size, "sample": sample_digest(path, size)}
    manifest = {"manifest": MANIFEST_VERSION, "format": cache_format,
                "writer": {"package": _package_version()}, "files": files}
    out = folder / MANIFEST_FILE
    out.write_text(json.dumps(manifest, indent=1))
    return out


def check_entry(folder: str | Path, cache_format: str) -> str | None:
    """None when ``folder`` is intact as its manifest says, else what is wrong (one short clause).

    Files the manifest does not list (a reader's own side files) are ignored."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        return NO_MANIFEST
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST_FILE} is unreadable"
    if manifest.get("format") != cache_format:
        return f"format {manifest.get('format')!r}, expected {cache_format!r}"
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return f"{len(missing)} of {len(files)} files missing: {missing[0]}{more}"
    for name, expected in files.items():
        path = folder / name
        size = path.stat().st_size
        if size != expected["size"]:
            return f"file {name}: size {size}, expected {expected['size']}"
    for name, expected in files.items():
        if sample_digest(folder / name, expected["size"]) != expected["sample"]:
            return f"file {name}: content differs from its manifest"
    return None


def usable_entry(folder: str | Path, cache_format: str, *, log: Callable[[str], None] = print) -> bool:
    """Whether the cache entry ``folder`` exists and is intact. A damaged one gets one line
    (``cache entry X is damaged (why): rebuilding``) and False: the caller rebuilds it."""
    folder = Path(folder)
    if not folder.exists():
        return False
    damage = check_entry(folder, cache_format)
    if damage is None:
        return True
    if damage == NO_MANIFEST:  # most likely a cache from before manifests: not damaged, but unverifiable
        log(f"cache entry {folder} has no manifest (written before manifests, or never finished): rebuilding")
    else:
        log(f"cache entry {folder} is damaged ({damage}): rebuilding")
    return False


def damaged_or_absent(cache_format: str) -> Callable[[Path], bool]:
    """``publish_dir``'s ``stale=``: an existing entry that fails its check is moved aside for the new one."""
    return lambda target: check_entry(target, cache_format) is not None


def intact(cache_format: str) -> Callable[[Path], bool]:
    """``publish_dir``'s ``complete=``: a concurrent publisher's copy is kept only when it is intact."""
    return lambda target: check_entry(target, cache_format) is None


__all__ = ["MANIFEST_FILE", "MANIFEST_VERSION", "NO_MANIFEST", "SAMPLE_BYTES", "check_entry", "damaged_or_absent", "intact",
           "sample_digest", "usable_entry", "write_manifest"]
