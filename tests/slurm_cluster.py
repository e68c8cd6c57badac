"""Pytest plugin: a local single-node SLURM cluster for the submitit end-to-end tests.

mimdet-ablate submits the MIMDet ablation runs through submitit to SLURM; mocking sbatch would not
catch what breaks on a real cluster (array throttling, GRES requests, dependencies, sacct states).
The session-scoped ``slurm_cluster`` fixture makes sure a real SLURM (with accounting and fake GPUs)
runs on this machine, starting it with ``scripts/slurm/start-slurm.sh`` when needed and stopping it
with ``scripts/slurm/stop-slurm.sh`` at session end -- but only if this session started it.
Tests that use the fixture are marked ``slurm`` automatically, so ``-m slurm`` / ``-m 'not slurm'``
select them. Wired in by ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import REPO

SCRIPTS = REPO / "scripts" / "slurm"
START_TIMEOUT_S = 180  # a cold start installs ~30 debs with apt (measured 16-22 s); daemons take ~3 s
STOP_TIMEOUT_S = 180  # stop-slurm.sh: <= 20 s for cancelled jobs, then <= 30 s per daemon before SIGKILL
USABLE_NODE_STATES = {"idle", "mixed", "allocated", "completing"}
# what start-slurm.sh needs and installs with apt-get when missing (slurmdbd/mariadbd: accounting)
SLURM_BINARIES = ["munged", "slurmctld", "slurmd", "sbatch", "slurmdbd", "mariadbd"]


@dataclass(frozen=True)
class SlurmCluster:
    """What tests need to know to submit to the local cluster."""

    partition: str  # default partition (pass as slurm_partition)
    gpus_per_node: int  # fake GPUs (GRES gpu) on the node; 0 = none configured
    base: Path  # $SLURM_BASE: logs in base/log, daemon pid files in base/run


def _sinfo(fmt: str) -> list[str]:
    """Lines of ``sinfo -h -o FMT``; empty when sinfo is missing or no controller answers."""
    if shutil.which("sinfo") is None:
        return []
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", fmt], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return []
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _cluster_up() -> bool:
    """True if a node answers in a state that accepts jobs (``idle*`` = not responding).

    ``scontrol ping`` goes first: it answers at once when slurmctld is down, where sinfo retries ~9 s.
    """
    if shutil.which("scontrol") is None:
        return False
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return ping.returncode == 0 and any(state.strip() in USABLE_NODE_STATES for state in _sinfo("%T"))


def _describe(base: Path) -> SlurmCluster:
    """Read the default partition and GPU count of the running cluster from sinfo."""
    rows = [line.split("|", 1) for line in _sinfo("%P|%G") if "|" in line]
    if not rows:
        pytest.fail("SLURM is up but `sinfo -o '%P|%G'` lists no partition")
    defaults = [part for part, _ in rows if part.endswith("*")]
    partition = (defaults or [rows[0][0]])[0].rstrip("*")
    gpus = [int(m.group(1)) for _, gres in rows for m in re.finditer(r"gpu:(?:[^:,(]+:)?(\d+)", gres)]
    return SlurmCluster(partition=partition, gpus_per_node=max(gpus, default=0), base=base)


def _skip_reason() -> str | None:
    """Why this session cannot start SLURM itself, or None if it can."""
    uid = os.geteuid()
    if uid != 0:
        return (
            f"local SLURM is not running and needs root to start daemons (uid={uid}); "
            f"run `sudo {SCRIPTS / 'start-slurm.sh'}` first"
        )
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [b for b in SLURM_BINARIES if shutil.which(b, path=path) is None]
    if missing and shutil.which("apt-get") is None:
        return f"SLURM packages missing ({', '.join(missing)}) and no apt-get to install them"
    if missing and os.environ.get("SLURM_NO_INSTALL") == "1":
        return f"SLURM packages missing ({', '.join(missing)}) and SLURM_NO_INSTALL=1 forbids apt-get"
    return None


def _run_script(name: str, timeout_s: float) -> tuple[int | None, str]:
    """Run scripts/slurm/NAME; return (exit code or None on timeout, combined output).

    Output goes to a file, not a pipe, so daemons the script leaves running cannot keep us reading;
    on timeout the whole process group (e.g. a hanging apt-get) is terminated.
    """
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(
            ["bash", str(SCRIPTS / name)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.seek(0)
        return rc, out.read()


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running local SLURM: reused if up, else started (root) for this session and stopped after it."""
    base = Path(os.environ.get("SLURM_BASE", "/var/tmp/slurm-local"))
    started = False
    if not _cluster_up():
        reason = _skip_reason()
        if reason is not None:
            pytest.skip(reason)
        rc, output = _run_script("start-slurm.sh", START_TIMEOUT_S)
        if rc != 0:
            status = f"timed out after {START_TIMEOUT_S}s" if rc is None else f"exited {rc}"
            pytest.fail(
                f"scripts/slurm/start-slurm.sh {status}; logs in {base}/log (daemons it did start are"
                f" stopped by scripts/slurm/stop-slurm.sh). Last output:\n{_tail(output)}",
                pytrace=False,
            )
        started = True
    try:
        yield _describe(base)
    finally:
        if started:
            rc, output = _run_script("stop-slurm.sh", STOP_TIMEOUT_S)
            if rc != 0:
                pytest.fail(f"scripts/slurm/stop-slurm.sh failed (rc={rc}):\n{_tail(output)}", pytrace=False)


def lose_node(cluster: SlurmCluster) -> None:
    """Make the node vanish as a machine that loses power does: SIGKILL its slurmd and every process of
    every job on it (each ``slurmstepd`` and all it started), so nothing tells slurmctld; it finds out
    when slurmd misses its pings for ``SlurmdTimeout`` (30 s in start-slurm.sh) and sets the node DOWN.
    """
    parents: dict[int, int] = {}
    steps = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, _, rest = text[text.index("(") + 1 :].rpartition(")")
        pid = int(stat.parent.name)
        parents[pid] = int(rest.split()[1])  # fields after the name: state, parent pid, ...
        if name == "slurmstepd":
            steps.append(pid)
    doomed = set(steps)
    while grown := {pid for pid, parent in parents.items() if parent in doomed} - doomed:
        doomed |= grown
    slurmd = int((cluster.base / "run" / "slurmd.pid").read_text())
    for pid in [slurmd, *sorted(doomed)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_controller(cluster: SlurmCluster, timeout_s: float = 30) -> None:
    """Stop slurmctld alone (SIGTERM, as an admin or a crash would leave it): slurmd, accounting and the
    jobs go on; ``restore_node`` starts it again, and it takes its jobs back from its saved state."""
    pid = int((cluster.base / "run" / "slurmctld.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            pytest.fail(f"slurmctld (pid {pid}) still runs {timeout_s:.0f} s after SIGTERM")
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie has exited: PID 1 here reaps lazily)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def restore_node() -> None:
    """Start what is down again (start-slurm.sh): slurmd, and with ``ReturnToService=2`` the DOWN node
    takes jobs again; or slurmctld."""
    rc, output = _run_script("start-slurm.sh", START_TIMEOUT_S)
    if rc != 0:
        pytest.fail(f"scripts/slurm/start-slurm.sh could not bring the node back:\n{_tail(output)}")


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection looks at the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses ``slurm_cluster`` as ``slurm``, so ``-m`` can select or skip them."""
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)


def poll_sacct(
    jobs: str, names: list[str], ready: Callable[[list[dict[str, str]]], bool], timeout_s: float = 30
) -> list[dict[str, str]]:
    """Allocation rows (``sacct -X``) of ``jobs`` as dicts of ``names``, once ``ready`` accepts them.

    Polls because accounting lags the jobs: submitit's result pickle exists while slurmdbd still says
    RUNNING, and a just-started array task may have no row yet.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", jobs, "-o", ",".join(names)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        found = [dict(zip(names, line.split("|"), strict=True)) for line in out.splitlines()]
        if ready(found):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"sacct -j {jobs}: not there after {timeout_s:.0f}s, got {found}")
        time.sleep(0.5)
