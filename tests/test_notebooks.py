"""The notebooks run top to bottom on a fresh results store (empty, with records, with a checkpoint) and are
committed without outputs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from nbformat import NotebookNode

from mimdet.record.schema import write_record
from tests import REPO
from tests.test_analysis_tables import make_record

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def execute(name: str, workdir: Path, **parameters: Any) -> NotebookNode:
    """Run a notebook with ``parameters`` injected after its "parameters" cell (as papermill does).

    The first cell reports the kernel's interpreter prefix, checked against this one: the notebook must run
    in the project's environment (jupyter_client starts the "python3" kernelspec with ``sys.executable``).
    """
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell("\n".join(f"{key} = {value!r}" for key, value in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    assert nb.cells[0].outputs[0]["text"].strip() == sys.prefix
    assert not [out for cell in nb.cells for out in cell.get("outputs", []) if out["output_type"] == "error"]
    return nb


def outputs(nb: NotebookNode, kind: str) -> list[Any]:
    """Every output's ``kind`` entry: "image/png", "text/markdown", or "stdout" for printed text."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stdout" and out["output_type"] == "stream" and out["name"] == "stdout":
                found.append(out["text"])
            elif kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell() -> None:
    assert [p.name for p in NOTEBOOKS] == ["fig2_feature_maps.ipynb", "table2_analysis.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb)
        assert nb.nbformat == 4
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(cell.outputs == [] and cell.execution_count is None for cell in code), path.name
        assert code[0].metadata.get("tags") == ["parameters"], path.name


def test_table2_notebook_on_a_store(tmp_path: Path) -> None:
    store = tmp_path / "results"
    records = [
        make_record(0.25, 1.0, 30.0, 27.5, hours=1.5, mem_gib=3.0),
        make_record(0.25, 0.25, 20.0, 18.0, stage="eval"),
        make_record(0.5, 1.0, 33.25, 29.0, hours=2.25, mem_gib=0.5, mem_kind="cpu_peak_rss_delta"),
        make_record(1.0, 1.0, None, None, status="failed", hours=None, mem_gib=None),
    ]
    for record in records:
        write_record(record, store / "runs" / record.run_id / "record.json")
    nb = execute("table2_analysis.ipynb", tmp_path, RESULTS=str(store))
    assert f"4 records from {store}" in "".join(outputs(nb, "stdout"))
    (table,) = outputs(nb, "text/markdown")
    assert "| 25% | 20.0 / 18.0 (paper 46.8 / 42.9, Δ −26.8 / −24.9) |" in table
    assert "failed" in table
    assert len(outputs(nb, "image/png")) == 2  # heatmaps, accuracy against cost


def test_table2_notebook_demonstrates_with_the_paper_numbers_without_records(tmp_path: Path) -> None:
    nb = execute("table2_analysis.ipynb", tmp_path, RESULTS=str(tmp_path / "no-store"), WITH_PAPER=False)
    assert "DEMONSTRATION" in "".join(outputs(nb, "stdout"))
    (table,) = outputs(nb, "text/markdown")
    assert "| 50% |  |  | 49.5 / 44.3 | 51.0 / 45.2 | 51.5 / 46.0 | 20.3 h | 19.9 G |" in table
    assert len(outputs(nb, "image/png")) == 2


def test_fig2_notebook_finds_the_sweep_checkpoint_or_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint where the tiny Fig. 2 sweep puts MIMDet's training; none for the Benchmarking run."""
    from detectron2.checkpoint import DetectionCheckpointer

    from mimdet.run.features import load_run_model
    from sweeps.expand import expand
    from sweeps.spec import load_spec

    monkeypatch.chdir(REPO)  # the spec's config paths are relative to the repository root
    (mimdet_run,) = [
        run for run in expand(load_spec("sweeps/tiny/fig2.yaml")).trainings if run.cell["row"] == "mimdet"
    ]
    run_dir = tmp_path / "results" / "runs" / mimdet_run.run_id
    run_dir.mkdir(parents=True)
    DetectionCheckpointer(load_run_model(mimdet_run.config_file)[0], str(run_dir)).save("model_final")
    nb = execute("fig2_feature_maps.ipynb", tmp_path, RESULTS=str(tmp_path / "results"))
    printed = "".join(outputs(nb, "stdout"))
    assert f"MIMDet: {mimdet_run.config_file}, weights from {run_dir / 'model_final.pth'}" in printed
    assert "benchmarking: no trained checkpoint" in printed
    assert "Benchmarking: experiments/tiny_benchmarking.py, weights from initialisation" in printed
    assert len(outputs(nb, "image/png")) == 1
