"""A pytest plugin that keeps a finished test run from hanging on threads that never end.

Python exits only after every non-daemon thread has ended (thread-pool workers included), so
one stray thread -- an event loop left behind by a test that timed out, a worker a test forgot
to stop -- keeps the process alive after pytest has printed its summary, and CI waits for its
own time limit with nothing to show. Once pytest is done, this gives the interpreter's normal
shutdown ``CROPLAYER_PYTEST_EXIT_GRACE`` seconds (default 15); if the process is still alive
then, it prints each non-daemon thread's name and stack and ends the process with pytest's
exit status. A clean run exits as usual and prints nothing.

Registered by ``tests/conftest.py``; ``-p no:croplayer-exit-guard`` turns it off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback

import pytest

NAME = "croplayer-exit-guard"
GRACE_ENV = "CROPLAYER_PYTEST_EXIT_GRACE"


def stray_threads() -> list[threading.Thread]:
    """The threads that keep the interpreter from exiting (all but main and daemons)."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


def report(status: int, grace: float) -> str:
    frames = sys._current_frames()
    stray = stray_threads()
    lines = [
        "",
        f"pytest finished (exit status {status}), but {len(stray)} non-daemon thread(s) still "
        f"ran {grace:g} s later and would keep the process alive; ending it:",
    ]
    for t in stray:
        lines.append(f"--- thread {t.name!r} (ident {t.ident}):")
        frame = frames.get(t.ident) if t.ident is not None else None
        if frame is not None:
            lines.extend(s.rstrip("\n") for s in traceback.format_stack(frame))
    return "\n".join(lines) + "\n"


def _watch(status: int, grace: float) -> None:
    time.sleep(grace)
    # Still here: the interpreter is waiting for threads that do not end.
    text = report(status, grace)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        sys.__stderr__.write(text)
        sys.__stderr__.flush()
    except (AttributeError, OSError, ValueError):
        os.write(2, text.encode(errors="replace"))
    os._exit(status)


class ExitGuard:
    def __init__(self) -> None:
        self.status = 0

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.status = int(exitstatus)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        grace = float(os.environ.get(GRACE_ENV, "15"))
        # A daemon thread: it dies with a process that exits on its own, and keeps running
        # while the interpreter's shutdown waits for the other threads.
        threading.Thread(
            target=_watch, args=(self.status, grace), name="pytest-exit-guard", daemon=True
        ).start()
