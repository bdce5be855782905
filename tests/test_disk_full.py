"""A disk that fills up: every writer's failure is told apart from other errors and becomes the one line.

The writers fail on a real full disk where this machine lets the test mount a small tmpfs (root); each case
also runs on the exception that writer raised there (measured: ``trainables.disk_space``), so it holds without
root too. The whole sweep that fills its storage and is resumed: tests/test_disk_full_sweep.py (slow).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import uuid

import pytest

from orchestrator.disk_full import EXIT_STORAGE_FULL, ResumeHint, exit_on_full_disk, line, line_for
from orchestrator.state import SweepState
from trainables import faults
from trainables.disk_space import EndRunOnFullDisk, as_disk_full, disk_full_error, path_in, says_disk_full

# What each writer raised on a full tmpfs (Python 3.11, pyarrow 25, torch 2.13, SQLite 3).
PYARROW_UPLOAD = "[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"
TORCH_SAVE = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"
# How a Ray Train worker's failure reads in the trial's error file, as Tune saved it.
TUNE_ERROR_FILE = """Failure # 1 (occurred at 2026-12-03_13-40-02)
ray.exceptions.RayTaskError(TrainingFailedError): ray::_Inner.train() (pid=1234, ip=10.0.0.1)
ray.train.v2.api.exceptions.WorkerGroupError: Training failed due to worker errors:
[Rank 0 Error Snippet]:
  File "trainables/checkpoints.py", line 90, in report
    raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device
"""


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    """A 2 MiB tmpfs filled to the last byte, or a skip where no file system can be mounted (not root)."""
    mount = tmp_path_factory.mktemp("full-disk")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root; the measured exceptions below cover each writer")
    try:
        with open(mount / "filler", "wb") as filler:
            with pytest.raises(OSError):
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_each_writers_measured_error_is_a_full_disk():
    assert disk_full_error(OSError(errno.ENOSPC, "No space left on device", "/s/x/sweep.json")).filename == \
        "/s/x/sweep.json"
    assert disk_full_error(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    assert disk_full_error(OSError(28, PYARROW_UPLOAD.split("] ", 1)[1])) is not None
    assert disk_full_error(sqlite3.OperationalError("database or disk is full")) is not None
    assert says_disk_full(TUNE_ERROR_FILE) and path_in(TUNE_ERROR_FILE) is None
    assert path_in("OSError: [Errno 28] No space left on device: '/s/x/confirm/error.txt'") == \
        "/s/x/confirm/error.txt"


def test_a_full_disk_is_found_inside_the_errors_that_wrap_it():
    from ray.exceptions import RayTaskError
    from ray.train.v2.api.exceptions import ControllerError, WorkerGroupError

    upload = OSError(errno.ENOSPC, "No space left on device", "/s/x/train/run/checkpoint_0")
    wrapped = RayTaskError("train", "Traceback ...", upload).as_instanceof_cause()
    assert disk_full_error(wrapped).filename == "/s/x/train/run/checkpoint_0"
    group = WorkerGroupError("Training failed due to worker errors", {0: upload})
    assert disk_full_error(group).filename == "/s/x/train/run/checkpoint_0"
    assert disk_full_error(ControllerError(upload)) is upload  # EndRunOnFullDisk's, raised in the controller
    try:
        try:
            raise upload
        except OSError as error:
            raise RuntimeError("the stage failed") from error
    except RuntimeError as outer:
        assert disk_full_error(outer) is upload


def test_other_errors_are_not_a_full_disk(tmp_path):
    assert disk_full_error(OSError(errno.EACCES, "Permission denied", "/s")) is None
    assert disk_full_error(FileNotFoundError(errno.ENOENT, "No such file", "/s")) is None
    assert disk_full_error(ValueError("loss is nan at step 10")) is None
    assert not says_disk_full("Traceback ...\nRuntimeError: CUDA out of memory")
    # torch's stream writer failing on a disk with room (a broken file, not space) is not called a full disk
    assert as_disk_full(RuntimeError(TORCH_SAVE), tmp_path) is None


def test_the_writers_on_a_real_full_disk(full_disk, tmp_path):
    import pyarrow.fs
    import torch

    # the driver's sweep.json (published atomically): the old record stays whole
    sweep_dir = full_disk / "sweep"
    with pytest.raises(OSError) as state_write:
        SweepState("s1", "baseline_xnli", config={"note": "x" * 4_000_000}).save(sweep_dir)
    assert disk_full_error(state_write.value) is not None
    # Ray Train's checkpoint upload (pyarrow's copy)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "weights.bin").write_bytes(os.urandom(1_000_000))
    (full_disk / "checkpoint_0").mkdir(exist_ok=True)
    with pytest.raises(OSError) as upload:
        pyarrow.fs.copy_files(str(tmp_path / "ckpt"), str(full_disk / "checkpoint_0"))
    assert disk_full_error(upload.value).errno == errno.ENOSPC and upload.value.filename is None
    # torch.save into a full scratch folder: no errno; the disk's free space decides
    with pytest.raises(RuntimeError) as save:
        torch.save({"w": torch.zeros(1_000_000)}, full_disk / "state.pt")
    assert disk_full_error(save.value) is None
    assert as_disk_full(save.value, full_disk).filename == str(full_disk)
    # an SQLite store (the Optuna study, a file MLflow store)
    with pytest.raises(sqlite3.OperationalError) as db:
        connection = sqlite3.connect(full_disk / f"{uuid.uuid4().hex}.db")
        connection.execute("create table t (x)")
        for _ in range(100):
            connection.execute("insert into t values (?)", (os.urandom(10_000),))
        connection.commit()
    assert disk_full_error(db.value) is not None
    # the line names the full path and its free space now (none)
    text = line_for(upload.value, ResumeHint(full_disk, "20261203-130000"))
    assert text.startswith(f"storage full: no space left on device writing {full_disk} (0 bytes free there now)")


def test_the_line_says_which_path_how_much_is_free_and_what_to_do(tmp_path):
    storage = tmp_path / "sweeps" / "baseline_xnli"
    hint = ResumeHint(storage, "20261203-130000")
    text = line(str(storage / "20261203-130000" / "sweep.json"), hint)
    assert "\n" not in text
    assert text.startswith(f"storage full: no space left on device writing {storage / '20261203-130000'}")
    assert " free there now); " in text
    assert f"free space under {storage} or pass --storage on a larger disk" in text
    assert text.endswith("then rerun the same command with --resume 20261203-130000: finished trials are kept")
    # no path in the error: the storage; before the sweep has an id: no --resume
    assert line(None, ResumeHint(storage)).endswith("then rerun the same command")
    assert f"writing {storage} (" in line(None, ResumeHint(storage))
    # a full disk elsewhere (a node's scratch folder): free space there
    assert "free space on the disk of /tmp/xlt-checkpoint-1" in line("/tmp/xlt-checkpoint-1", hint)


def test_main_turns_a_full_disk_into_one_line_and_its_exit_code(tmp_path, capsys):
    hint = ResumeHint(tmp_path, "20261203-130000")
    with pytest.raises(SystemExit) as stopped:
        with exit_on_full_disk(hint):
            raise RuntimeError("Tune failed") from OSError(errno.ENOSPC, "No space left on device")
    assert stopped.value.code == EXIT_STORAGE_FULL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: storage full: ") and "--resume 20261203-130000" in err
    with pytest.raises(ValueError):  # anything else goes on as it was
        with exit_on_full_disk(hint):
            raise ValueError("not a disk")


def test_the_fault_hook_names_a_seed_and_a_step(monkeypatch):
    monkeypatch.setenv(faults.STORAGE_FULL, "2:100")
    assert faults.storage_full_step(2) == 100 and faults.storage_full_step(1) is None
    assert faults.from_environment()[faults.STORAGE_FULL] == "2:100"  # the sweep passes it to its workers
    monkeypatch.setenv(faults.STORAGE_FULL, "two")
    with pytest.raises(ValueError, match="expected <seed>:<step>"):
        faults.storage_full_step(2)
    monkeypatch.delenv(faults.STORAGE_FULL)
    assert faults.storage_full_step(2) is None



@pytest.mark.parametrize("error, attempts", [("full", 1), ("other", 3)])
def test_a_train_run_ends_at_its_first_full_disk_and_retries_other_errors(tmp_path, error, attempts):
    """Real Ray Train, two restarts allowed: a full disk ends the run at once (each restart would train to the
    next checkpoint and find the disk still full); another worker error is still restarted."""
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.exceptions import TrainingFailedError

    def attempt(config):
        with open(config["log"], "a") as log:
            log.write("attempt\n")
        if config["error"] == "full":
            raise OSError(errno.ENOSPC, "No space left on device", "/s/x/train-t/checkpoint_000003")
        raise RuntimeError("another error")

    log = tmp_path / "attempts.txt"
    trainer = TorchTrainer(attempt, train_loop_config={"log": str(log), "error": error},
                           scaling_config=ray.train.ScalingConfig(num_workers=1),
                           run_config=ray.train.RunConfig(name="run", storage_path=str(tmp_path / "ray"),
                                                          callbacks=[EndRunOnFullDisk()],
                                                          failure_config=ray.train.FailureConfig(max_failures=2)))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        with pytest.raises(TrainingFailedError) as failed:
            trainer.fit()
    finally:
        ray.shutdown()
    assert log.read_text().count("attempt") == attempts
    found = disk_full_error(failed.value)
    assert (found.filename if found else None) == ("/s/x/train-t/checkpoint_000003" if error == "full" else None)
