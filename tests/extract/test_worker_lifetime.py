"""Issue 14, finding 4: worker processes never outlive the extraction run (kill -9, SIGTERM, SIGINT)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

RUN = """
import sys
sys.path.insert(0, {here!r})
import counting_extractor as ce
from ebmc.extract import pipeline, workers
from ebmc.extract.manifest import load_manifest
ce.install()
workers._init_worker = ce.init_worker  # the spawned workers build counting extractors too
man = load_manifest({videos!r})
with workers.stop_on_signals():
    try:
        pipeline.run(man, {out!r}, {{m: ce.CountingConfig(delay=1.0) for m in ("audio", "vision")}}, workers=2)
    except workers.Interrupted as e:
        sys.exit(128 + e.signum)
"""


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def start_run(tmp_path: Path) -> tuple[subprocess.Popen, set[int]]:
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(40):
        (videos / f"v{k:02d}.mp4").write_bytes(b"clip %d " % k * (k + 1))
    script = RUN.format(here=str(Path(__file__).parent), videos=str(videos), out=str(tmp_path / "features"))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    cache = tmp_path / "features" / "videos" / ".cache"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None and len(list(cache.rglob("*.npz"))) < 2:
        time.sleep(0.1)  # both workers set up and extracting
    kids = descendants(proc.pid)
    assert proc.poll() is None and len(kids) >= 2, "the run must have its workers when it is stopped"
    return proc, kids


def assert_all_gone(pids: set[int], timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    survivors = [p for p in pids if alive(p)]
    for p in survivors:  # do not leave them behind for the rest of the suite
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"worker processes {survivors} outlived their parent"


def test_workers_exit_when_the_parent_is_killed_with_sigkill(tmp_path):
    proc, kids = start_run(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_all_gone(kids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_sigterm_and_sigint_stop_the_workers_and_exit_cleanly(tmp_path, sig):
    proc, kids = start_run(tmp_path)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 128 + sig
    assert_all_gone(kids, timeout=5.0)
