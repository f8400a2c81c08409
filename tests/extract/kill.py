"""Kill -9 a running extraction once its cache holds enough entries, for the resume tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_9_when_cached(argv: list[str], cache: Path, entries: int, timeout: float = 120) -> int:
    """Run ``argv`` (a Python child on this test's sys.path), SIGKILL it once ``cache`` holds ``entries``
    result files (or it ended, or ``timeout`` passed); returns the number of result files left."""
    proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and len(list(cache.rglob("*.npz"))) < entries:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(list(cache.rglob("*.npz")))
