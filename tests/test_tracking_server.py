"""The head's MLflow server as the cluster files start it: it answers under full CPU load, comes back when it
dies, and a sweep waits for it with one line (issue 20, item 2). Real processes, no mocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from orchestrator.tracking_server import check_tracking

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def head_mlflow_command(name: str) -> str:
    """The head's MLflow line of a cluster file, as one shell command (without its pkill of older servers)."""
    head = [" ".join(c.split()) for c in yaml.safe_load((REPO / name).read_text())["head_start_ray_commands"]]
    (command,) = [c for c in head if "mlflow_server.sh" in c]
    prefix = 'pkill -f "mlflow_server.sh|mlflow server" || true; '
    assert command.startswith(prefix)  # a new head stops an old server first
    return command[len(prefix):]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/health", timeout=5).read().strip() == b"OK"
    except OSError:
        return False


def wait_healthy(url: str, seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if healthy(url):
            return time.monotonic() - start
        time.sleep(1)
    raise AssertionError(f"{url}/health did not answer in {seconds} s")


def test_the_cluster_files_mlflow_answers_under_load_and_comes_back_after_a_crash(tmp_path, capsys):
    port = free_port()
    command = (head_mlflow_command("cluster.local.yaml")
               .replace("/mnt/xlt-sweep/mlflow", str(tmp_path / "store"))
               .replace("~/xlt-sweep/", f"{REPO}/").replace("~/mlflow-server.log", str(tmp_path / "server.log"))
               .replace(" 5000 ", f" {port} "))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    shell = subprocess.Popen(["bash", "-c", command + " wait"], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, 240)  # every core busy, as on a head that also runs the sweep
        server = subprocess.run(["pgrep", "-f", f"uvicorn .*--port {port}"], capture_output=True, text=True).stdout.split()
        assert server
        for pid in server:
            os.kill(int(pid), signal.SIGKILL)  # the process serving the port dies (an OOM kill); the server exits
        time.sleep(1)                           # and its supervisor starts it again
        assert not healthy(url)
        check_tracking(url, wait_s=240)  # a sweep started now waits, says so, and goes on once it answers
        assert f"waiting for the MLflow tracking server {url} to answer /health" in capsys.readouterr().out
        assert "starting it again in 5 s" in (tmp_path / "server.log").read_text()
    finally:
        for proc in load:
            proc.kill()
        os.killpg(shell.pid, signal.SIGKILL)  # the supervisor first, so that it starts nothing more
        for pid in subprocess.run(["pgrep", "-f", f"mlflow server --host 127.0.0.1 --port {port} "],
                                  capture_output=True, text=True).stdout.split():
            os.killpg(int(pid), signal.SIGKILL)  # the server's group: uvicorn, its job runner and consumers
