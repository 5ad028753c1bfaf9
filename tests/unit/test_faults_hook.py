"""The test-only fault hook: inert by default, each kind does what the acceptance suite expects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cosmicai import faults
from cosmicai.worker import TransientStorageError


def test_inert_without_the_deploy_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV_FLAG, raising=False)
    faults.inject("r", ["fault-crash-0", "fault-oom-1", "fault-transient9-2"])  # returns: nothing injected


def test_transient_fails_the_first_n_attempts_of_a_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(faults.ENV_FLAG, "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for attempt in (1, 2):
        with pytest.raises(TransientStorageError, match=f"{attempt}/2 for shard fault-transient2-a of run run-x"):
            faults.inject("run-x", ["part-0", "fault-transient2-a"])
    faults.inject("run-x", ["part-0", "fault-transient2-a"])  # third attempt succeeds
    with pytest.raises(TransientStorageError, match="1/2"):
        faults.inject("run-y", ["fault-transient2-a"])  # counted per run


def test_other_names_are_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV_FLAG, "1")
    faults.inject("r", ["part-00000", "faulty-crash", "my-fault-crash"])


def test_crash_exits_the_process_with_a_non_zero_code() -> None:
    code = f"import os; os.environ[{faults.ENV_FLAG!r}] = '1'\nfrom cosmicai import faults\nfaults.inject('r', ['fault-crash-7'])\nprint('survived')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == faults.CRASH_EXIT_CODE and "survived" not in proc.stdout
