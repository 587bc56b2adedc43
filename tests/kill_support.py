"""kill -9 at a point a child process reached: what the fault tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_when_flagged(child: subprocess.Popen[bytes], flag: Path, *, limit_s: float, what: str) -> None:
    """Wait until `child` writes `flag` (failing with its stderr if it exits first, or after
    `limit_s`), then SIGKILL it; a child still alive on the way out is killed too."""
    try:
        deadline = time.monotonic() + limit_s
        while not flag.exists():
            assert child.poll() is None, child.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, f"the child never reached {what}"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
