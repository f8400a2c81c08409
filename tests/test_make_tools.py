"""Issue 14, finding 8: `make test` installs or clearly demands the system tools instead of skipping tests."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_tools_names_a_missing_tool_and_stops(tmp_path):
    # no espeak-ng and no apt-get on this PATH: the target must stop and say what to install
    done = subprocess.run([shutil.which("make"), "-s", "-C", str(ROOT), "tools"], capture_output=True, text=True,
                          env={"PATH": str(tmp_path)}, timeout=60)
    assert done.returncode != 0
    assert "the tests need espeak-ng" in done.stderr and "apt-get install espeak-ng" in done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_test_runs_tools_and_turns_skips_into_failures():
    plan = subprocess.run([shutil.which("make"), "-n", "-C", str(ROOT), "test", "VENV=/nonexistent"],
                          capture_output=True, text=True, timeout=60).stdout
    assert "espeak-ng" in plan  # the tools recipe runs before pytest
    makefile = (ROOT / "Makefile").read_text()
    assert "export EBMC_REQUIRE_MEDIA := 1" in makefile
