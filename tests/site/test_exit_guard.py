"""A finished pytest run ends even when a test left a thread running (tests/exit_guard.py):
with the run's exit status, naming the thread, instead of waiting for CI's time limit."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SAMPLE = "tests/site/exit_guard_sample.py"


def _run_sample(*, fails: bool) -> subprocess.Popen[str]:
    env = dict(os.environ, CROPLAYER_PYTEST_EXIT_GRACE="2", EXIT_GUARD_SAMPLE_FAILS=str(int(fails)))
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SAMPLE],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def test_a_stray_thread_does_not_keep_pytest_alive():
    runs = {fails: _run_sample(fails=fails) for fails in (False, True)}
    for fails, proc in runs.items():
        try:
            out, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError(f"pytest did not exit (fails={fails}):\n{out[-3000:]}") from None
        assert proc.returncode == (1 if fails else 0), out[-3000:]
        assert ("1 failed" if fails else "1 passed") in out, out[-3000:]
        assert "non-daemon thread(s) still ran 2 s later" in out, out[-3000:]
        assert "--- thread 'never-ending-worker'" in out, out[-3000:]
        assert "in wait" in out  # its stack
