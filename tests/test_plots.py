"""analysis.plots: every figure from a small synthetic frame (states included), saving, bad input, Fig. 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.plots import (
    PlotError,
    plot_accuracy_vs_cost,
    plot_decoders,
    plot_feature_maps,
    plot_table2_heatmaps,
    write_plots,
)
from mimdet.run.features import FeatureMaps, feature_maps, load_run_model
from tests.test_analysis_tables import row, seeded, status_row, tiny_sweep

GIB = 2**30


def decoder_frame() -> pd.DataFrame:
    runs = {1: (3_100_000, 0.5, 0.25), 2: (3_300_000, 0.75, 0.5), 4: (3_600_000, 1.0, 0.75)}
    rows = [
        row(0.5, 1.0, 20.0 + n, 18.0 + n, num_decoders=n, params=p, hours=h, mem_gib=m)
        for n, (p, h, m) in runs.items()
    ]
    return pd.DataFrame([*rows, status_row("failed", num_decoders=8)])


def cell_texts(ax: Axes) -> dict[tuple[int, int], str]:
    """A heatmap's annotations by (column, row) = (inference index, training index)."""
    return {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts}


def xs(line: Line2D) -> list[float]:
    return np.asarray(line.get_xdata(), dtype=float).tolist()


def ys(line: Line2D) -> list[float]:
    return np.asarray(line.get_ydata(), dtype=float).tolist()


def pixels(ax: Axes) -> np.ma.MaskedArray:
    """The data of the axes' image (masked where a heatmap cell has no colour)."""
    return np.ma.asarray(ax.get_images()[0].get_array())


def titled(fig: Figure, start: str) -> Axes:
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith(start)]
    return ax


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


# --- Table 2 heatmaps -----------------------------------------------------------------------------------


def test_heatmaps_annotate_values_and_states() -> None:
    fig = plot_table2_heatmaps(tiny_sweep(), with_paper=False)
    assert len(fig.axes) == 4  # two heatmaps, two colour bars
    box, mask = titled(fig, "AP box: measured"), titled(fig, "AP mask: measured")
    assert "coco_2017_val" in box.get_title()
    assert cell_texts(box) == {
        (0, 0): "20.0",
        (1, 0): "queued",
        (2, 0): "30.0",
        (1, 1): "running",
        (2, 1): "33.2",
        (2, 2): "failed",
    }
    assert cell_texts(mask)[(0, 0)] == "18.0" and cell_texts(mask)[(2, 1)] == "29.0"
    failed = next(t for t in box.texts if t.get_text() == "failed")
    assert to_rgba(failed.get_color()) == to_rgba("tab:red")
    assert [t.get_text() for t in box.get_xticklabels()] == ["25%", "50%", "100%"]
    assert [t.get_text() for t in box.get_yticklabels()] == ["25%", "50%", "100%"]
    assert "inference" in box.get_xlabel() and "training" in box.get_ylabel()
    image = pixels(box)
    assert image.mask[1, 0] and image.mask[0, 1]  # lower triangle and a queued cell carry no colour
    assert image[0, 2] == 30.0


def test_heatmaps_and_cost_points_show_the_mean_of_seed_repeats() -> None:
    """As the tables do: before, a figure showed the latest seed alone."""
    rows = pd.DataFrame(
        [
            seeded(0, 0.5, 1.0, 41.0, 36.0, hours=2.0),
            seeded(1, 0.5, 1.0, 43.0, 37.0, hours=3.0, created_at="2025-01-02T00:00:00+00:00"),
        ]
    )
    box = titled(plot_table2_heatmaps(rows, with_paper=False), "AP box: measured")
    assert cell_texts(box) == {(0, 0): "42.0"} and pixels(box)[0, 0] == 42.0
    time_ax = titled(plot_accuracy_vs_cost(rows), "AP vs. training time")
    assert xs(time_ax.get_lines()[0]) == [2.5] and ys(time_ax.get_lines()[0]) == [42.0]


def test_heatmaps_say_missing_and_show_the_paper_below() -> None:
    rows = tiny_sweep()
    fig = plot_table2_heatmaps(rows[rows["status"] != "queued"])
    assert len(fig.axes) == 8
    assert cell_texts(titled(fig, "AP box: measured"))[(1, 0)] == "missing"
    paper_box, paper_mask = titled(fig, "AP box: paper"), titled(fig, "AP mask: paper")
    assert cell_texts(paper_box) == {
        (0, 0): "46.8",
        (1, 0): "49.4",
        (2, 0): "49.9",
        (1, 1): "49.5",
        (2, 1): "51.5",
        (2, 2): "51.8",
    }
    assert cell_texts(paper_mask)[(2, 1)] == "46.0"


# --- accuracy against cost ------------------------------------------------------------------------------


def test_accuracy_vs_cost_points_labels_and_paper_series() -> None:
    fig = plot_accuracy_vs_cost(tiny_sweep())
    time_ax, mem_ax = titled(fig, "AP vs. training time"), titled(fig, "AP vs. training memory")
    assert len(fig.axes) == 6  # two panels, each with the paper's right and top axes
    box_line = time_ax.get_lines()[0]
    assert xs(box_line) == [1.5, 2.25]
    assert ys(box_line) == [30.0, 33.25]
    assert ys(mem_ax.get_lines()[1]) == [29.0, 27.5]  # mask, in memory order: 0.5, 3 GiB
    assert [t.get_text() for t in time_ax.texts] == ["25%", "50%"]
    assert [t.get_text() for t in mem_ax.texts] == ["25%", "50%*"]  # * marks the CPU RSS figure
    assert "(h" in time_ax.get_xlabel() and "GiB" in mem_ax.get_xlabel() and "CPU RSS" in mem_ax.get_xlabel()
    assert "not shown: 100% (training failed)" in fig.get_suptitle()
    paper_lines = [line for ax in fig.axes if ax not in (time_ax, mem_ax) for line in ax.get_lines()]
    assert sorted(xs(line) for line in paper_lines)[0] == [14.2, 15.9, 19.9, 28.5]
    assert all(line.get_linestyle() == "--" for line in paper_lines)
    assert any("100% memory: oom" in text for text in texts(fig))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("V100" in text for text in legend)


def test_accuracy_vs_cost_uses_the_highest_inference_ratio_evaluated() -> None:
    frame = pd.DataFrame(
        [
            row(0.5, 1.0, None, None, hours=2.0, mem_gib=4.0),  # a training that left evaluation to others
            row(0.5, 0.5, 30.0, 25.0, stage="eval"),
            row(0.5, 0.75, 31.0, 26.0, stage="eval"),
        ]
    )
    fig = plot_accuracy_vs_cost(frame)
    time_ax = titled(fig, "AP vs. training time")
    assert [t.get_text() for t in time_ax.texts] == ["50% (inf. 75%)"]
    assert ys(time_ax.get_lines()[0]) == [31.0]


# --- Table 3 --------------------------------------------------------------------------------------------


def test_decoders_panels_states_and_paper() -> None:
    fig = plot_decoders(decoder_frame())
    assert len(fig.axes) == 6
    ap_ax, params_ax, mem_ax = (titled(fig, t) for t in ("AP", "parameters", "training memory"))
    assert xs(ap_ax.get_lines()[0]) == [1, 2, 4, 8]
    np.testing.assert_array_equal(ys(ap_ax.get_lines()[0]), [21.0, 22.0, 24.0, np.nan])  # a gap at 8
    np.testing.assert_allclose(ys(params_ax.get_lines()[0]), [3.1, 3.3, 3.6, np.nan])
    np.testing.assert_array_equal(ys(mem_ax.get_lines()[0]), [0.25, 0.5, 0.75, np.nan])
    assert "params (M)" in params_ax.get_ylabel() and "GiB" in mem_ax.get_ylabel()
    assert texts(fig).count("failed") == 3  # decoder count 8, at the foot of each panel
    paper_lines = [line for ax in fig.axes if ax not in (ap_ax, params_ax, mem_ax) for line in ax.get_lines()]
    assert len(paper_lines) == 4 and all(line.get_linestyle() == "--" for line in paper_lines)
    assert [ys(line) for line in paper_lines][2] == [118, 121, 127, 140]
    assert [t.get_text() for t in ap_ax.get_xticklabels()] == ["1", "2", "4", "8"]


# --- saving and bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "make", "names"),
    [
        ("table2", tiny_sweep, ["table2_heatmaps", "table2_accuracy_vs_cost"]),
        ("table3", decoder_frame, ["table3_decoders"]),
    ],
)
def test_write_plots_saves_png_and_pdf(tmp_path: Path, table: str, make: Any, names: list[str]) -> None:
    paths = write_plots(make(), table, tmp_path / "figures")
    assert paths == [tmp_path / "figures" / f"{name}.{suffix}" for name in names for suffix in ("png", "pdf")]
    for path in paths:
        assert path.stat().st_size > 1000
    assert paths[0].read_bytes().startswith(b"\x89PNG") and paths[1].read_bytes().startswith(b"%PDF")


def test_write_plots_tables_without_figures_and_unknown_tables(tmp_path: Path) -> None:
    assert write_plots(tiny_sweep(), "table1", tmp_path) == []
    with pytest.raises(PlotError, match="unknown table 'table9'"):
        write_plots(tiny_sweep(), "table9", tmp_path)


PLOTTERS = [plot_table2_heatmaps, plot_accuracy_vs_cost, plot_decoders]


@pytest.mark.parametrize("plot", PLOTTERS)
@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame(), "no column"),
        (pd.DataFrame({"model": ["mimdet"], "status": ["completed"]}), "no column"),
        (tiny_sweep().drop(columns=["bbox_AP"]), "no column 'bbox_AP'"),
        (pd.DataFrame([row(model="benchmarking")]), "no runs match"),
        ("results.csv", "expected a pandas DataFrame"),
    ],
)
def test_bad_frames_are_one_line_plot_errors(plot: Any, frame: Any, message: str) -> None:
    with pytest.raises(PlotError, match=message) as caught:
        plot(frame)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_bad_frame_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match="no column 'train_wall_time_s'"):  # the second figure's column
        write_plots(tiny_sweep().drop(columns=["train_wall_time_s"]), "table2", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cost_plot_needs_a_completed_training_and_evaluation() -> None:
    frame = pd.DataFrame([status_row("queued", 0.5, 1.0), row(1.0, 1.0, None, None, status="failed")])
    with pytest.raises(PlotError, match=r"50% \(training queued\), 100% \(training failed\)"):
        plot_accuracy_vs_cost(frame)


def test_decoders_plot_needs_a_completed_run() -> None:
    """Before: a figure of the paper's lines alone, written as if it were a result."""
    frame = pd.DataFrame(
        [status_row("new", num_decoders=n) for n in (1, 2)] + [status_row("queued", num_decoders=4)]
    )
    with pytest.raises(
        PlotError, match=r"no decoder count has a completed .*: 1 \(training new\), 2 .*4 \(training queued\)"
    ):
        plot_decoders(frame)


# --- Fig. 2 ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_maps() -> list[tuple[str, FeatureMaps]]:
    """Real feature maps of the tiny configs at initialisation, on a small image with a square in it."""
    image = np.full((96, 128, 3), 60, dtype=np.uint8)
    image[30:70, 40:90] = (220, 200, 40)
    torch.manual_seed(0)
    items = []
    for name, config in (("MIMDet", "tiny_mimdet.py"), ("Benchmarking", "tiny_benchmarking.py")):
        model, resize = load_run_model(config)
        items.append((name, feature_maps(model, image, resize)))
    return items


def test_feature_maps_grid(tiny_maps: list[tuple[str, FeatureMaps]]) -> None:
    fig = plot_feature_maps(tiny_maps)
    assert len(fig.axes) == 10  # two models x (input, backbone mean / PCA, P2 mean / PCA)
    assert [fig.axes[0].get_ylabel(), fig.axes[5].get_ylabel()] == ["MIMDet", "Benchmarking"]
    titles = [ax.get_title() for ax in fig.axes[:5]]
    assert titles[0].startswith("input (256×192)")
    assert titles[1].startswith("stride-4 backbone: channel mean") and "16 channels" in titles[1]
    assert "64 channels" in fig.axes[6].get_title()  # the Benchmarking ViT's upsampled map
    assert titles[3].startswith("FPN P2: channel mean") and "principal" in titles[4]
    mean = pixels(fig.axes[1])
    pca = pixels(fig.axes[2])
    assert mean.shape == (48, 64) and pca.shape == (48, 64, 3)
    assert pca.min() >= 0 and pca.max() <= 1 and pca.std() > 0.05
    assert fig.axes[1].get_images()[0].get_extent() == [0, 256, 192, 0]  # drawn over the image
    assert "checkerboard" in fig.get_suptitle()


def test_feature_maps_flat_map_and_no_models() -> None:
    flat = FeatureMaps(np.zeros((8, 8, 3), np.uint8), torch.ones(4, 2, 2), torch.zeros(2, 2, 2))
    fig = plot_feature_maps([("flat", flat)])
    for ax in fig.axes[1:]:
        assert np.allclose(pixels(ax), 0.5)  # mid-grey, no NaN
    with pytest.raises(PlotError, match="no models"):
        plot_feature_maps([])


def test_a_model_name_that_looks_like_maths_is_drawn_as_written() -> None:
    """A spec's row label names the model; matplotlib would read ``$...$`` as maths and fail at drawing."""
    import io

    flat = FeatureMaps(np.zeros((8, 8, 3), np.uint8), torch.ones(4, 2, 2), torch.zeros(2, 2, 2))
    fig = plot_feature_maps([(r"$\nosuchcommand$", flat)])
    fig.savefig(io.BytesIO(), format="png")
    assert fig.axes[0].get_ylabel() == r"$\nosuchcommand$"
