"""peak_rss_mb reports the process's own peak, not its parent's (Linux keeps ru_maxrss across execve)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosmicai.procstats import cpu_info, peak_rss_mb


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_child_of_a_big_process_reports_its_own_peak() -> None:
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB resident in this process
    assert peak_rss_mb() > 400
    out = subprocess.run(
        [sys.executable, "-c", "from cosmicai.procstats import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(out.stdout) < 200, "the child reported the parent's peak"
    del ballast


def test_reads_vmhwm_and_falls_back_to_getrusage(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  524288 kB\nVmRSS:\t  1000 kB\n")
    assert peak_rss_mb(status) == 512.0
    assert peak_rss_mb(tmp_path / "missing") > 0


def test_cpu_info_reads_model_and_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n"
    )
    assert cpu_info(info) == ("Test CPU", frozenset({"fpu", "avx2", "avx512_bf16"}))
    assert cpu_info(tmp_path / "missing") == ("?", frozenset())
