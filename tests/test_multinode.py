"""A real multi-node Ray cluster on one machine: a head and two worker nodes as `ray start` processes,
one of them in its own mount namespace (its view of a directory is a private tmpfs), so
"storage on this node only" is real, not simulated. The sweep refuses such storage with one line
before it writes anything; on storage every node sees, a sweep joined with --address spreads its
trials over the nodes, and survives its faults: the driver killed mid-search and resumed, a trial
whose loss turns NaN, and a worker node removed mid-run (the last test: the cluster keeps two nodes)."""

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

import numpy as np
import pytest

from tests.smoke_cache import seed_smoke_cache
from tests.test_sweep_smoke import env, runs_of, sweep_command
from trainables import faults

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
        # A custom resource names each node, so a test can find its Ray node id (``node_ids``).
        name = json.dumps({f"xlt_node_{len(self.procs)}": 1})
        command = [RAY, "start", "--block", "--disable-usage-stats", "--num-cpus=1", f"--resources={name}", *args]
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

    def node_ids(self) -> dict[int, str]:
        """Ray node id of each node, by start order (0: the head)."""
        script = ("import json, ray; ray.init(address='auto', log_to_driver=False); print(json.dumps("
                  "{k: n['NodeID'] for n in ray.nodes() if n['Alive'] for k in n['Resources'] if k.startswith('xlt_node_')}))")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={**os.environ, **self.env, "RAY_ADDRESS": self.address})
        assert out.returncode == 0, out.stderr[-2000:]
        found = json.loads(out.stdout.strip().splitlines()[-1])
        return {int(key.rsplit("_", 1)[1]): node for key, node in found.items()}

    def kill_node(self, index: int) -> None:
        """Remove a node the hard way: SIGKILL its raylet and every process it started."""
        os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait(timeout=20)

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


STAGES = ("search", "search-seed", "confirm")


def _optuna_trials(sweep_root: Path) -> dict[int, tuple[str, float | None, dict]]:
    import optuna

    (db,) = sweep_root.glob("*/optuna.db")
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{db}")
    study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{db}")
    return {t.number: (t.state.name, t.value, t.params) for t in study.get_trials(deepcopy=False)}


def test_driver_killed_mid_search_resumes_and_a_diverged_seed_is_reported_missing(cluster, tmp_path):
    """A search over two seeds per trial (--search-seeds 2: 2 trials x 2 seed runs, spread over the nodes).
    SIGKILL the sweep driver once a search trial has finished (no Ctrl-C handler runs); --resume finishes
    the sweep in the same parent run, without rerunning a finished trial or seed run and with the Optuna
    history intact; Optuna holds each trial's mean over its seed runs. Seed 3's loss is made NaN (fault
    injection): its confirm run fails with the reason, the sweep goes on, and the table reports the missing
    seed."""
    cluster, _private = cluster
    args = ("baseline_xnli", "--profile", "smoke", "--num-samples", "2", "--arms", "baseline", "--seeds", "1,3",
            "--search-seeds", "2", "--set", "max_steps=20", "--address", cluster.address,
            "--storage", str(tmp_path / "sweeps"))
    run_env = {**client_env(cluster), faults.NAN_LOSS: "3:5"}
    seed_smoke_cache(tmp_path, *args)
    proc = subprocess.Popen(sweep_command(*args), cwd=tmp_path, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[search] done"):
            proc.kill()  # SIGKILL: the driver gets no chance to save anything
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    _, (parent,), children = runs_of(tmp_path, "baseline_xnli", stages=STAGES)
    finished = {c.info.run_id: c.info.end_time for c in children if c.info.status == "FINISHED"}
    assert len(finished) >= 3 and {c.data.tags["stage"] for c in children} <= {"search", "search-seed"}
    history = _optuna_trials(tmp_path / "sweeps")
    complete = {n: t for n, t in history.items() if t[0] == "COMPLETE"}
    assert complete

    done = subprocess.run(sweep_command(*args, "--resume"), cwd=tmp_path, env=run_env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, parents, children = runs_of(tmp_path, "baseline_xnli", stages=STAGES)
    assert [p.info.run_id for p in parents] == [parent.info.run_id] and parents[0].info.status == "FINISHED"
    search = [c for c in children if c.data.tags["stage"] == "search"]
    assert len(search) == 2 and len({c.data.tags["trial_id"] for c in search}) == 2
    assert all(c.info.status == "FINISHED" and c.data.tags["seed"] == "9001,9002" for c in search)
    seed_runs = [c for c in children if c.data.tags["stage"] == "search-seed"]
    assert len(seed_runs) == 4 and all(c.info.status == "FINISHED" for c in seed_runs)
    for run in search + seed_runs:  # a run that had finished was not run again
        if run.info.run_id in finished:
            assert run.info.end_time == finished[run.info.run_id]
    after = _optuna_trials(tmp_path / "sweeps")
    assert len(after) == 2 and all(state == "COMPLETE" for state, _, _ in after.values())
    assert {n: after[n] for n in complete} == complete  # the history before the kill is unchanged
    # Each trial's seed runs are nested under its run; Optuna's value is the mean of their dev scores.
    values = sorted(value for _, value, _ in after.values())
    means = []
    for trial in search:
        seeds = [c for c in seed_runs if c.data.tags["mlflow.parentRunId"] == trial.info.run_id]
        assert sorted(c.data.params["seed"] for c in seeds) == ["9001", "9002"]
        dev = [c.data.metrics["dev_acc"] for c in seeds]
        assert trial.data.metrics["dev_acc"] == pytest.approx(np.mean(dev))
        assert trial.data.metrics["dev_acc_std"] == pytest.approx(np.std(dev, ddof=1))
        assert trial.data.metrics["search_seeds"] == 2
        means.append(np.mean(dev))
    assert values == pytest.approx(sorted(means))

    confirm = {int(c.data.tags["seed"]): c for c in children if c.data.tags["stage"] == "confirm"}
    assert sorted(confirm) == [1, 3]
    assert confirm[1].info.status == "FINISHED" and confirm[3].info.status == "FAILED"
    assert "training loss became nan at step 20" in confirm[3].data.tags["error"]
    assert "missing seeds: baseline: 3" in done.stdout


def test_sweep_survives_losing_a_worker_node_mid_run(cluster, tmp_path):
    """Three seeds on three 1-CPU nodes, one trial per node. Every run holds for a while after its step-10
    evaluation and checkpoint (fault injection: a smoke run trains in about a second, too quick to catch), and
    the worker node of one of them is killed then: Ray Train restarts that run from its step-10 checkpoint on
    a node that frees up, and the sweep ends with every seed once in MLflow. Runs last: the cluster keeps two
    nodes."""
    cluster, _private = cluster
    victim = cluster.node_ids()[2]
    seeds = ("1", "2", "3")
    args = ("baseline_xnli", "--profile", "smoke", "--num-samples", "0", "--arms", "baseline", "--seeds", ",".join(seeds),
            "--set", "num_train_epochs=1", "--set", "eval_every_steps=10", "--address", cluster.address,
            "--storage", str(tmp_path / "sweeps"))
    seed_smoke_cache(tmp_path, *args)
    proc = subprocess.Popen(sweep_command(*args),
                            cwd=tmp_path, env={**client_env(cluster), faults.PAUSE: "10:12"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    killed_run, deadline, nodes_seen = None, time.monotonic() + 400, set()
    while killed_run is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            _, _, children = runs_of(tmp_path, "baseline_xnli")
        except Exception:  # the store is being created
            continue
        nodes_seen |= {run.data.tags["train_node"] for run in children if "train_node" in run.data.tags}
        for run in children:  # its step-10 evaluation was reported, so its checkpoint is stored; it holds there
            # (step 10 of the epoch's 38: epoch 0.26; the next report comes after the hold)
            if run.data.tags.get("train_node") == victim and "eval_dev_acc" in run.data.metrics \
                    and run.data.metrics.get("epoch", 1.0) < 0.5 and run.info.status == "RUNNING":
                cluster.kill_node(2)
                killed_run = run.info.run_id
                break
    assert killed_run is not None, "no trial checkpointed on the victim node in time"
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    assert "up to 3 at a time" in output  # one trial per CPU of the three nodes
    client, parents, children = runs_of(tmp_path, "baseline_xnli")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["seed"] for c in children) == list(seeds)  # each seed once, none duplicated
    assert all(c.info.status == "FINISHED" for c in children)
    moved = client.get_run(killed_run)
    assert moved.data.metrics["resumed_from_step"] == 10  # it went on from its checkpoint, not from step 0
    assert moved.data.tags["train_node"] != victim  # on a node that is still there
    # Trials trained on different nodes (seen while they ran: after the kill they may all end on one).
    assert len(nodes_seen | {c.data.tags["train_node"] for c in children}) >= 2, nodes_seen
