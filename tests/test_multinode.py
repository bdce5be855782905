"""A real multi-node Ray cluster on one machine: a head and two worker nodes as `ray start` processes,
one of them in its own mount namespace (its view of a directory is a private tmpfs), so
"storage on this node only" is real, not simulated. The sweep refuses such storage with one line
before it writes anything; on storage every node sees, a sweep joined with --address spreads its
trials over the nodes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_sweep_smoke import env, runs_of, sweep_command

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None,
                       reason="a node in its own mount namespace needs Linux, root and unshare"),
]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`ray start --block` processes: a head and worker nodes, each stopped by its process group."""

    def __init__(self, root: Path):
        self.root, self.port, self.procs = root, _free_port(), []
        self.address = f"127.0.0.1:{self.port}"
        # Ray's socket paths must stay under 108 bytes: a short directory, not pytest's tmp_path.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="xlt-ray-", dir="/tmp"))
        # Token authentication on, as on a real cluster: every node and client reads the same token file.
        token = self.temp_dir / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}

    def _start(self, args: list[str], *, private_dir: Path | None = None) -> None:
        command = [RAY, "start", "--block", "--disable-usage-stats", "--num-cpus=1", *args]
        if private_dir is not None:  # this node sees its own, empty private_dir
            command = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       f'mount -t tmpfs tmpfs "{private_dir}" && exec "$@"', "node", *command]
        log = open(self.root / f"node-{len(self.procs)}.log", "w")
        self.procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                           env={**os.environ, **self.env, "RAY_TMPDIR": str(self.temp_dir)}))

    def start(self, *, workers: int, private_dir: Path | None = None) -> None:
        self._start(["--head", f"--port={self.port}", "--include-dashboard=false",
                     f"--temp-dir={self.temp_dir}"])
        self._wait_nodes(1)
        for index in range(workers):  # one at a time: raylets starting together on one machine can time out
            self._start([f"--address={self.address}"], private_dir=private_dir if index == 0 else None)
            self._wait_nodes(2 + index)

    def _wait_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [proc.args for proc in self.procs if proc.poll() is not None]
            if dead:
                raise RuntimeError(f"a node exited: {dead}; logs in {self.root}")
            out = subprocess.run([RAY, "status", f"--address={self.address}"], capture_output=True, text=True,
                                 env={**os.environ, **self.env})
            if out.returncode == 0 and out.stdout.count(" node_") >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not reach {n} nodes: {out.stdout[-2000:]} {out.stderr[-2000:]}")

    def stop(self) -> None:
        """SIGTERM every node's process group, then SIGKILL what is left after a few seconds."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and two worker nodes (1 CPU each); the first worker's view of ``private`` is its own empty tmpfs."""
    root = tmp_path_factory.mktemp("cluster")
    private = root / "node-local"
    private.mkdir()
    cluster = LocalCluster(root)
    try:
        cluster.start(workers=2, private_dir=private)
        yield cluster, private
    finally:
        cluster.stop()


def client_env(cluster: LocalCluster) -> dict[str, str]:
    """A sweep or client process of this cluster: the repository on the path, the cluster's token."""
    return {**env(), **cluster.env}


PROBE = """
import json, sys
from pathlib import Path
import ray
from orchestrator.shared_storage import StorageNotShared, check_storage_is_shared, nodes_that_cannot_see

shared, private = Path(sys.argv[2]), Path(sys.argv[3])
ray.init(address=sys.argv[1], log_to_driver=False)
out = {"shared": nodes_that_cannot_see(shared), "private": nodes_that_cannot_see(private)}
for name, storage, uri in (("ok", shared, f"sqlite:///{shared}/mlflow.db"), ("storage", private, "http://127.0.0.1:5000"),
                           ("tracking", shared, f"sqlite:///{private}/mlflow.db")):
    try:
        check_storage_is_shared(storage, uri)
        out[name] = None
    except StorageNotShared as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def test_storage_probe_tells_shared_from_node_local(cluster, tmp_path):
    """Run as a client process: Ray reads its token settings when it is first imported."""
    cluster, private = cluster
    shared = tmp_path / "shared"
    proc = subprocess.run([sys.executable, "-c", PROBE, cluster.address, str(shared), str(private)],
                          env=client_env(cluster), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["shared"] == [3, []]
    n, blind = out["private"]
    assert n == 3 and len(blind) == 1  # the namespaced worker sees its own empty tmpfs
    assert out["ok"] is None
    assert "local to this node: 1 of the cluster's 3 nodes" in out["storage"]
    assert "--tracking-uri sqlite:///" in out["tracking"] and "is a file on this node only" in out["tracking"]
    assert not list(shared.iterdir()) and not list(private.iterdir())  # the probe cleans up


def test_sweep_refuses_node_local_storage_with_one_line_before_writing(cluster, tmp_path):
    cluster, private = cluster
    proc = subprocess.run(sweep_command("baseline_xnli", "--profile", "smoke", "--address", cluster.address,
                                        "--storage", str(private / "sweeps")),
                          cwd=tmp_path, env=client_env(cluster), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "is local to this node" in lines[0] and "--storage /mnt/xlt-sweep/sweeps" in lines[0]
    assert not (private / "sweeps").exists() or not any((private / "sweeps").iterdir())  # no sweep started


def test_sweep_joined_with_address_runs_trials_on_several_nodes(cluster, tmp_path):
    cluster, _private = cluster
    seeds = ("1", "2", "3")
    proc = subprocess.run(sweep_command("baseline_xnli", "--profile", "smoke", "--num-samples", "0", "--arms", "baseline",
                                        "--seeds", ",".join(seeds), "--set", "num_train_epochs=1",
                                        "--address", cluster.address, "--storage", str(tmp_path / "sweeps")),
                          cwd=tmp_path, env=client_env(cluster), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "up to 3 at a time" in proc.stdout  # one trial per CPU of the three nodes
    _, parents, children = runs_of(tmp_path, "baseline_xnli")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["seed"] for c in children) == list(seeds)
    assert all(c.info.status == "FINISHED" for c in children)
    nodes = {c.data.tags["train_node"] for c in children}
    assert len(nodes) >= 2, nodes  # trials trained on different nodes
