"""Image-equivalent cold start: a fresh interpreter imports the infer handler, loads the weights
and makes its first prediction, as a new Lambda execution environment does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Runs in a fresh interpreter with COSMICAI_WEIGHTS set, like the inference image.
_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import cosmicai.handlers.infer as infer
t_import = time.perf_counter() - t0
import numpy as np
precision, batch = sys.argv[1], int(sys.argv[2])
engine = infer._engine(precision, batch)
t_engine = time.perf_counter() - t0
rng = np.random.default_rng(0)
images = rng.normal(0.0, 0.05, (1, 5, 32, 32)).astype(np.float32)
mags = rng.normal(18.0, 1.0, (1, 5)).astype(np.float32)
engine.predict(images, mags)
t_first = time.perf_counter() - t0
from cosmicai.engine import peak_rss_mb
print(json.dumps({"import_s": t_import, "engine_s": t_engine - t_import, "first_prediction_s": t_first,
                  "peak_rss_mb": peak_rss_mb()}))
"""


class ColdStartError(RuntimeError):
    """The cold-start probe process failed (message carries its stderr tail)."""


def probe_cold_start(weights: Path, precision: str, batch_size: int, threads: int = 1) -> dict[str, Any]:
    """Seconds from interpreter start to import, engine built and first prediction, plus peak RSS."""
    env = dict(os.environ, COSMICAI_WEIGHTS=str(weights), OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _PROBE, precision, str(batch_size)],
                         capture_output=True, text=True, env=env, check=False)
    process_s = time.perf_counter() - t0
    if res.returncode != 0:
        raise ColdStartError(f"cold-start probe ({precision}, batch {batch_size}) failed: {res.stderr.strip()[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "precision": precision,
        "import_s": round(out["import_s"], 3),
        "engine_s": round(out["engine_s"], 3),
        "first_prediction_s": round(out["first_prediction_s"], 3),
        "process_wall_s": round(process_s, 3),  # includes interpreter start-up
        "peak_rss_mb": round(out["peak_rss_mb"], 1),
    }


__all__ = ["ColdStartError", "probe_cold_start"]
