"""``python tests/raylet_processes.py default|told``: a local Ray of 1 CPU with 14 zero-CPU actors, as Ray starts it
(``default``: it expects 1 Python process, and warns once the node's Python processes less the 8 it sets aside
for I/O workers reach 4x that: at 12) or told to expect 14 (``told``: the sweep's
``orchestrator.quiet.raylet_settings``; it would warn at 64). Prints what Ray prints; ``tests/test_quiet.py``
reads it."""

from __future__ import annotations

import contextlib
import os
import sys
import time

import ray

from orchestrator.quiet import raylet_settings

ACTORS = 14


@ray.remote(num_cpus=0)
class Idle:
    def pid(self) -> int:
        return os.getpid()


def main(mode: str) -> None:
    with raylet_settings(ACTORS) if mode == "told" else contextlib.nullcontext():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        actors = [Idle.remote() for _ in range(ACTORS)]
        pids = ray.get([actor.pid.remote() for actor in actors])
        print(f"{len(set(pids))} actors answered", flush=True)
        time.sleep(3)  # the raylet's warning reaches the driver through the GCS, a moment later
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
