"""The ``sweep`` commands that read a spec and a store without running anything: what they print and when
they refuse, called in-process as ``sweeps.cli.main`` (the engine's own tests run real sweeps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_plan_prints_its_summary_on_a_fresh_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No record and no paper cost for the tiny model: the summary still says what exists and the
    estimate, and that the peak memory is unknown (it once printed only the last clause)."""
    code = main(["plan", str(REPO / "sweeps" / "tiny" / "table2.yaml"), "--root", str(tmp_path / "store")])
    out = capsys.readouterr().out
    summary = out.strip().splitlines()[-1]
    assert code == 0
    assert summary.startswith(f"store {tmp_path / 'store'}: 0 of 9 runs exist; estimated "), summary
    assert summary.endswith("peak memory unknown"), summary


@pytest.mark.parametrize(
    ("argv", "env", "problem"),
    [
        (["--root", "/tmp/store\n#SBATCH --wrap=x"], {}, "store root from --root: '/tmp/store\\n#SBATCH"),
        (
            [],
            {"MIMDET_RESULTS": "/tmp/100%store"},
            "store root from $MIMDET_RESULTS: '/tmp/100%store' holds '%'",
        ),
    ],
)
def test_a_store_root_that_would_break_the_job_script_is_one_line(
    argv: list[str],
    env: dict[str, str],
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["plan", str(REPO / "sweeps" / "tiny" / "table2.yaml"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"sweep: error: {problem}"), err
