"""``python -m mimdet.demo``: a Ctrl-C and an output the file system refuses are one line each."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from mimdet import demo
from mimdet.run.config import ConfigFileError
from tests import REPO
from tests.stalling import interrupted_at_its_stall

STALLED_IMPORT = """
import runpy
from tests.stalling import stall_first_import

stall_first_import("torch")
runpy.run_module("mimdet.demo", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_while_torch_loads_is_one_line() -> None:
    """Before: a KeyboardInterrupt traceback."""
    stopped = interrupted_at_its_stall([sys.executable, "-c", STALLED_IMPORT], PYTHONWARNINGS="ignore")
    assert stopped == (130, "python -m mimdet.demo: interrupted\n")


def test_a_ctrl_c_that_code_turns_into_another_error_is_still_interrupted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Code that catches every exception (a config file's imports) and raises its own once reported a
    Ctrl-C as a config file that cannot be loaded; a Ctrl-C is never a broken config file."""

    def config_that_swallows_the_interrupt() -> None:
        try:
            signal.raise_signal(signal.SIGINT)
        except BaseException:  # noqa: BLE001 — what the code this stands for does
            raise ConfigFileError("tiny_mimdet.py: cannot be loaded") from None

    monkeypatch.setattr(demo, "demo", config_that_swallows_the_interrupt)
    assert demo.main([]) == 130
    assert capsys.readouterr().err == "python -m mimdet.demo: interrupted\n"


def test_a_standard_output_the_file_system_refuses_is_one_line() -> None:
    """``> /dev/full``. Before: an OSError traceback, exit 1."""
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "mimdet.demo"],
            cwd=REPO,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    assert result.returncode == 4
    assert result.stderr == (
        "python -m mimdet.demo: error: no space left on device (writing the standard output)\n"
    )
