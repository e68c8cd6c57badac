"""The tiny detector learns something measurable on the CPU in minutes (slow: ~6 min on 2 cores).

.venv/bin/python -m pytest -m slow tests/test_tiny_learns.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mimdet.record.schema import read_record
from tests import REPO


@pytest.mark.slow
def test_tiny_mimdet_reaches_10_box_ap_on_synthetic_val(tmp_path: Path) -> None:
    """From the cached tiny MAE pre-training, 1,000 iterations at batch 4 on the synthetic shapes."""
    command = [sys.executable, "-m", "mimdet.train", "--config-file", "experiments/tiny_mimdet.py"]
    command += ["--output", str(tmp_path / "run"), "train.max_iter=1000"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "DETECTRON2_DATASETS": str(tmp_path / "datasets")}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_record(tmp_path / "run" / "record.json")
    assert record.metrics.bbox.AP is not None and record.metrics.bbox.AP >= 10.0, record.metrics
    assert record.metrics.segm.AP is not None and record.metrics.segm.AP >= 10.0, record.metrics
