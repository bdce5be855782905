"""The three lines a default sweep no longer prints (issue 22 item 6, ``orchestrator.quiet``), each against the
real library that printed it: Ray's token-auth notice (Ray's own function), MLflow's table-creation lines (a
real new store) and the raylet's worker-process warning (a real local Ray, slow). With the controls: what
``--verbose`` leaves alone still prints. A real default smoke sweep printing none of them:
``tests/test_sweep_smoke.py``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.quiet import (MLFLOW_STORE_LOGGER, STARTUP_CONCURRENCY_ENV, TOKEN_AUTH_LOGGER, TOKEN_AUTH_NOTICE,
                                quiet_known_noise,
                                raylet_settings, startup_concurrency)
from orchestrator.tracking import open_client

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_loggers():
    """``quiet_known_noise`` changes two loggers of this process: put them back for the other tests."""
    ray_logger, store_logger = logging.getLogger(TOKEN_AUTH_LOGGER), logging.getLogger(MLFLOW_STORE_LOGGER)
    filters, level = list(ray_logger.filters), store_logger.level
    # and start from the libraries' own state: an in-process sweep of an earlier test (sweep.main) quieted them
    ray_logger.filters[:] = [f for f in filters if getattr(f, "prefix", None) != TOKEN_AUTH_NOTICE]
    store_logger.setLevel(logging.NOTSET)
    yield
    ray_logger.filters[:] = filters
    store_logger.setLevel(level)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_the_token_auth_notice_is_dropped_and_nothing_else(restore_loggers):
    from ray._private.authentication import authentication_token_setup as ray_auth  # the code that prints it

    logger = logging.getLogger(TOKEN_AUTH_LOGGER)
    records, filters = Records(), len(logger.filters)
    logger.addHandler(records)
    try:
        ray_auth._warn_token_auth_enabled()  # what --verbose leaves alone
        assert len(records.messages) == 1 and records.messages[0].startswith("Token authentication is enabled")
        quiet_known_noise()
        quiet_known_noise()  # idempotent: one filter
        ray_auth._warn_token_auth_enabled()
        ray_auth._warn_token_auth_disabled()  # another warning of that logger still shows
        assert len(records.messages) == 2 and records.messages[1].startswith("Token authentication is disabled")
        assert len(logger.filters) == filters + 1
    finally:
        logger.removeHandler(records)


def test_creating_an_mlflow_store_prints_its_table_lines_only_when_verbose(tmp_path, capfd, restore_loggers):
    open_client(f"sqlite:///{tmp_path / 'verbose.db'}")
    shown = capfd.readouterr().err
    assert "Creating initial MLflow database tables" in shown and "Updating database tables" in shown
    quiet_known_noise()
    open_client(f"sqlite:///{tmp_path / 'quiet.db'}")
    assert "database tables" not in capfd.readouterr().err
    assert logging.getLogger(MLFLOW_STORE_LOGGER).isEnabledFor(logging.WARNING)  # a failed migration still shows


def test_the_startup_concurrency_counts_every_process_of_the_trials_at_once():
    # 2 CPUs, 2 trials of 1 worker: driver + controller + worker each, 6 processes (Ray expected 2, warned at 8)
    assert startup_concurrency(2, 1, cpus=2) == 6
    assert startup_concurrency(4, 2, cpus=2) == 16  # --workers-per-trial 2
    assert startup_concurrency(1, 1, cpus=64) == 64  # never below Ray's own default


def test_the_raylet_setting_lasts_for_the_ray_start_only_and_a_users_value_wins(monkeypatch):
    monkeypatch.delenv(STARTUP_CONCURRENCY_ENV, raising=False)
    with raylet_settings(6):
        assert os.environ[STARTUP_CONCURRENCY_ENV] == "6"
    assert STARTUP_CONCURRENCY_ENV not in os.environ
    monkeypatch.setenv(STARTUP_CONCURRENCY_ENV, "3")
    with raylet_settings(6):
        assert os.environ[STARTUP_CONCURRENCY_ENV] == "3"
    assert os.environ[STARTUP_CONCURRENCY_ENV] == "3"


@pytest.mark.slow
def test_a_local_ray_told_the_startup_concurrency_does_not_warn_about_its_processes():
    """A real local Ray of 1 CPU with 14 zero-CPU actors (``tests/raylet_processes.py``): Ray's default warns, the
    same Ray told to expect 14 (``raylet_settings``) does not."""
    script = REPO / "tests" / "raylet_processes.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(STARTUP_CONCURRENCY_ENV, None)
    warned = subprocess.run([sys.executable, str(script), "default"], capture_output=True, text=True, env=env,
                            timeout=300)
    told = subprocess.run([sys.executable, str(script), "told"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert warned.returncode == 0 and told.returncode == 0, warned.stderr[-2000:] + told.stderr[-2000:]
    assert "14 actors answered" in warned.stdout and "14 actors answered" in told.stdout
    assert "maximum expected startup concurrency" in warned.stdout + warned.stderr  # the control
    assert "maximum expected startup concurrency" not in told.stdout + told.stderr
