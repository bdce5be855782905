"""Ctrl-C during a stage: Tune's handler stops the run gracefully and puts back the handler it found, so a
trial that was running when Ctrl-C came counts as terminated in the result grid. ``CtrlCWatch`` tells such a
stop from a run that ended (the real Ctrl-C of a sweep: tests/test_sweep_smoke.py)."""

from __future__ import annotations

import os
import signal

from orchestrator.stages import CtrlCWatch


def _tune_like_run(send_ctrl_c: bool) -> None:
    """What ``Tuner.fit`` does with SIGINT: its own handler, which on a Ctrl-C restores the one it found."""
    found = signal.getsignal(signal.SIGINT)
    stopped = []

    def tune_handler(signum, frame):
        stopped.append(signum)
        signal.signal(signal.SIGINT, found)

    signal.signal(signal.SIGINT, tune_handler)
    if send_ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        assert stopped == [signal.SIGINT]


def test_a_run_stopped_by_ctrl_c_is_told_from_one_that_ended():
    before = signal.getsignal(signal.SIGINT)
    with CtrlCWatch() as ended:
        _tune_like_run(send_ctrl_c=False)
    assert not ended.pressed and signal.getsignal(signal.SIGINT) == before
    with CtrlCWatch() as stopped:
        _tune_like_run(send_ctrl_c=True)
    assert stopped.pressed and signal.getsignal(signal.SIGINT) == before
