"""What a run ran on and with: hardware, library versions, code version (record fields, never logs)."""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

from mimdet.record.schema import Hardware

REPO = Path(__file__).resolve().parents[2]
PACKAGES = (
    "torch",
    "torchvision",
    "sal-detectron2",
    "timm",
    "numpy",
    "pycocotools",
    "submitit",
    "mimdet-ablate",
)


def code_version() -> str:
    """The git commit of this checkout (``+dirty`` if it has changes), else the package version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "mimdet-ablate " + _version("mimdet-ablate")


def versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on."""
    found = {"python": platform.python_version()}
    found.update({name: _version(name) for name in PACKAGES})
    return found


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: str, processes: int = 1) -> Hardware:
    """Device kind, GPU model and the GPUs used (one per process on CUDA), CPU model, process count.

    The count is the run's processes, not the GPUs the machine has: GPU-hours are time x GPUs used.
    """
    import torch  # not at module level: the CLI's --help should not wait for torch

    on_cuda = device.startswith("cuda") and torch.cuda.is_available()
    return Hardware(
        device="cuda" if on_cuda else "cpu",
        gpu_model=torch.cuda.get_device_name(0) if on_cuda else None,
        gpu_count=processes if on_cuda else 0,
        cpu_model=cpu_model(),
        processes=processes,
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed" if name != "python" else sys.version.split()[0]


def quiet_third_party_warnings() -> None:
    """Silence the deprecation chatter of detectron2 2024 under torch 2.14 in command-line tools."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    warnings.filterwarnings("ignore", message="torch.meshgrid")
    # torch logs once per process, as a "W1128 12:00:00 ... _symbolic_trace.py:57]" line, that detectron2's
    # check for fx tracing will change meaning: nothing a run's user can act on
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
