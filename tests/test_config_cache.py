"""The sweep engine's config cache (``sweeps.config_cache``): a second command reads what the first one
learnt from the config files, without importing torch; any change to the code or the configs starts over."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sweeps import config_cache
from sweeps.cache_file import CacheFile
from tests import REPO

PLAN = """
import json, sys
from sweeps.estimate import estimate
from sweeps.expand import expand
from sweeps.spec import load_spec
from sweeps.store import Store
plan = expand(load_spec("sweeps/tiny/table3.yaml"))
cost = estimate(plan, Store(__import__("pathlib").Path(sys.argv[1])))
print(json.dumps({
    "ids": [run.run_id for run in plan.runs],
    "hours": [item.gpu_hours for item in cost.runs.values()],
    "torch": "torch" in sys.modules,
    "hydra": "hydra" in sys.modules,
}))
"""


def plan_in_a_new_process(cache: Path, store: Path) -> dict:
    env = {**os.environ, "MIMDET_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", PLAN, str(store)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_a_second_plan_loads_no_config_and_the_same_runs(tmp_path: Path) -> None:
    first = plan_in_a_new_process(tmp_path / "cache", tmp_path / "store")
    second = plan_in_a_new_process(tmp_path / "cache", tmp_path / "store")
    assert first["torch"] and not second["torch"] and not second["hydra"]
    assert second["ids"] == first["ids"] and second["hours"] == first["hours"]
    assert len(list((tmp_path / "cache" / "sweeps").glob("*.json"))) == 1


def test_a_changed_config_file_is_read_again(tmp_path: Path) -> None:
    plan_in_a_new_process(tmp_path / "cache", tmp_path / "store")
    config = REPO / "experiments" / "tiny_mimdet.py"
    stat = config.stat()
    try:
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # as an edit would
        again = plan_in_a_new_process(tmp_path / "cache", tmp_path / "store")
    finally:
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert again["torch"]  # the config was loaded again
    assert len(list((tmp_path / "cache" / "sweeps").glob("*.json"))) == 1  # the stale file is gone


def test_a_config_outside_experiments_is_kept_for_the_process_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its imports are outside what the cache's digest covers, so nothing about it goes to disk."""
    monkeypatch.setenv("MIMDET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(config_cache, "_CACHE", config_cache._Cache())
    outside = tmp_path / "mine.py"
    outside.write_text("x = 1\n")
    calls: list[str] = []
    for _ in range(2):
        assert config_cache.cached("fact", outside, None, lambda: calls.append("x") or 7) == 7
        assert config_cache.cached("fact", "tiny_mimdet.py", None, lambda: calls.append("y") or 8) == 8
    assert calls == ["x", "y"]
    config_cache._CACHE.save()
    (saved,) = (tmp_path / "cache" / "sweeps").glob("*.json")
    assert [key.split("|")[0] for key in json.loads(saved.read_bytes().partition(b"\n")[2])] == ["fact"]
    assert str(outside) not in saved.read_text()


def test_a_cache_file_changed_by_anything_else_is_read_around(tmp_path: Path) -> None:
    """Answers of the wrong shape in a file that is still JSON (an edit, another program). Before: a
    ``TypeError`` traceback from every command (an ``override`` answer of 5 taken for a problem's text);
    a changed ``content`` answer changed every run id, and the sweep's results were taken for none."""
    first = plan_in_a_new_process(tmp_path / "cache", tmp_path / "store")
    (cache_file,) = (tmp_path / "cache" / "sweeps").glob("*.json")
    text = cache_file.read_text()
    edited = re.sub(r'("override\|(?:[^"\\]|\\.)*"): null', r"\1: 5", text)
    assert edited != text
    cache_file.write_text(edited)
    assert plan_in_a_new_process(tmp_path / "cache", tmp_path / "store")["ids"] == first["ids"]


def test_a_cache_answer_of_nan_is_saved_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec may hold ``.nan`` (refused, but parsed and kept first). Before: the save raised ``ValueError``
    (strict JSON), a traceback at exit, and none of the process's answers were kept."""
    monkeypatch.setenv("MIMDET_CACHE", str(tmp_path / "cache"))
    saved = CacheFile("test", lambda: "digest")
    saved.entries["x"] = [float("nan"), float("inf")]
    saved.dirty = True
    saved.save()
    assert repr(CacheFile("test", lambda: "digest").entries["x"]) == "[nan, inf]"


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "folder"])
def test_a_cache_file_that_is_not_a_file_reads_as_empty_at_once(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a FIFO waited forever for a writer, a link to ``/dev/zero`` filled the memory."""
    monkeypatch.setenv("MIMDET_CACHE", str(tmp_path / "cache"))
    cache = CacheFile("test", lambda: "digest")
    path = tmp_path / "cache" / "sweeps" / "test-digest.json"
    path.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(kind)
    found: list[dict] = []
    reader = threading.Thread(target=lambda: found.append(cache.entries), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert found == [{}]
