"""Stopping a child process (servers, workers) that the scripts, benchmarks and the embedded
broker start."""

from __future__ import annotations

import subprocess
from typing import Any


def process_stop(proc: subprocess.Popen[Any] | None, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
