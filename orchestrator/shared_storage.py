"""A sweep on more than one node needs storage that every node sees.

Since Ray 2.7 there is no head-node syncing: trial checkpoints, the sweep state, the Optuna study
and the content-hashed caches (SALT scan, BTF model, tokenized data) are read and written by
whichever node runs the trial. A directory that exists on the driver's node only would make
trials on other nodes fail (or, worse, write results that a later driver never finds).

The check is a probe, not a guess from the path: the driver writes a marker file under the
storage directory and one zero-CPU task pinned to each alive node looks for it. A single-node
cluster skips the probe.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlparse


class StorageNotShared(Exception):
    """The sweep storage is not visible from every node. ``str()`` is the one line for the user."""


def _sees(path: str) -> bool:
    return os.path.exists(path)


def nodes_that_cannot_see(storage: Path, *, timeout_s: float = 120.0) -> tuple[int, list[str]]:
    """``(alive nodes, addresses of those that cannot see storage)``; Ray must be initialised."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) < 2:
        return len(nodes), []
    storage.mkdir(parents=True, exist_ok=True)
    marker = storage / f".shared-storage-probe-{uuid.uuid4().hex}"
    marker.write_text("written by the sweep driver; every node must see this file\n")
    probe = ray.remote(num_cpus=0, max_retries=0)(_sees)
    try:
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(str(marker)) for node in nodes]
        seen = ray.get(refs, timeout=timeout_s)
    finally:
        marker.unlink(missing_ok=True)
    blind = [f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})" for node, ok in zip(nodes, seen) if not ok]
    return len(nodes), blind


def local_store_dir(tracking_uri: str) -> Path | None:
    """The directory an MLflow file or SQLite store lives in; ``None`` for a server URI."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).parent
    if tracking_uri.startswith("file:"):
        return Path(urlparse(tracking_uri).path)
    if "://" not in tracking_uri:
        return Path(tracking_uri)
    return None


def check_storage_is_shared(storage: Path, tracking_uri: str) -> None:
    """Raise ``StorageNotShared`` (one line) when a node of a multi-node cluster cannot see the sweep
    storage, or the MLflow store when it is a file (a server URI is reached over the network)."""
    n_nodes, blind = nodes_that_cannot_see(storage)
    if blind:
        raise StorageNotShared(
            f"--storage {storage} is local to this node: {len(blind)} of the cluster's {n_nodes} nodes "
            f"({', '.join(blind)}) cannot see it; on a multi-node cluster put the sweep on a file system every node "
            f"mounts, e.g. --storage /mnt/xlt-sweep/sweeps (cluster.yaml mounts EFS there)")
    store = local_store_dir(tracking_uri)
    if store is not None and n_nodes > 1:
        _, blind = nodes_that_cannot_see(store)
        if blind:
            raise StorageNotShared(
                f"--tracking-uri {tracking_uri} is a file on this node only ({', '.join(blind)} cannot see {store}); "
                f"use a path on the shared file system or the MLflow server, e.g. --tracking-uri http://127.0.0.1:5000 "
                f"on the head of cluster.yaml")
