"""The packages import downward only: the model and one run (``mimdet``), then the sweep engine (``sweeps``)
and the analysis (``analysis``), then the command (``cli``). So the engine runs without the analysis's
plotting stack, and a change to a command never reaches the layers below it.

Read from the source with ``ast`` (every import statement, also those inside functions and under
``TYPE_CHECKING``), not by importing: an edge is forbidden wherever it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import REPO

FORBIDDEN = {  # package -> the packages it must not import
    "mimdet": {"sweeps", "analysis", "cli"},
    "sweeps": {"analysis", "cli"},
    "analysis": {"cli"},
}


def imported_packages(path: Path, package: str) -> set[str]:
    """The top-level packages a module imports; a relative import stays inside ``package``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(package if node.level else (node.module or "").split(".")[0])
    return found


def forbidden_imports(root: Path) -> list[str]:
    """``module -> package`` for every import that goes up a layer, in the packages under ``root``."""
    return sorted(
        f"{path.relative_to(root)} -> {target}"
        for package, above in FORBIDDEN.items()
        for path in (root / package).rglob("*.py")
        for target in imported_packages(path, package) & above
    )


def test_no_package_imports_a_layer_above_it() -> None:
    assert forbidden_imports(REPO) == []


@pytest.mark.parametrize(
    ("package", "statement"),
    [
        ("sweeps", "from analysis.tables import render_table"),
        ("sweeps", "import cli.main"),
        ("analysis", "from cli import main"),
        ("mimdet", "import sweeps.store as store"),
    ],
)
def test_an_import_up_a_layer_is_found(tmp_path: Path, package: str, statement: str) -> None:
    """The check itself: a forbidden edge is reported, also from inside a function of a subpackage."""
    module = tmp_path / package / "sub" / "module.py"
    module.parent.mkdir(parents=True)
    module.write_text(f"from . import sibling\n\n\ndef later() -> None:\n    {statement}\n")
    target = statement.split()[1].split(".")[0]
    assert forbidden_imports(tmp_path) == [f"{package}/sub/module.py -> {target}"]
