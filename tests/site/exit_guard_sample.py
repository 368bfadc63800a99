"""Run only by tests/site/test_exit_guard.py, in a pytest of its own (no ``test_`` prefix, so
the suite does not collect it): a test that leaves a non-daemon thread running for ever."""

import os
import threading


def test_leaves_a_thread_running():
    threading.Thread(target=threading.Event().wait, name="never-ending-worker").start()
    assert os.environ.get("EXIT_GUARD_SAMPLE_FAILS") != "1"
