"""The console printer of a training writes an iteration once: a second write of it must not fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from detectron2.utils.events import CommonMetricPrinter, EventStorage, JSONWriter

from mimdet.run.writers import OncePerIterationPrinter, training_writers


def write_twice(printer: CommonMetricPrinter) -> None:
    """What detectron2 does when a training stops inside the writers of an early iteration: the same
    iteration written again by ``after_train``, before any ``time`` history exists."""
    with EventStorage(start_iter=1) as storage:
        storage.put_scalar("total_loss", 1.5)
        printer.write()
        printer.write()


def test_detectron2_printer_fails_on_a_second_write_of_an_iteration() -> None:
    """The failure this module exists for: it replaced a cancelled training's own error in its record."""
    with pytest.raises(ZeroDivisionError):
        write_twice(CommonMetricPrinter(max_iter=100))


def test_a_second_write_of_an_iteration_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="detectron2.utils.events"):
        write_twice(OncePerIterationPrinter(max_iter=100))
    printed = [record for record in caplog.records if "total_loss" in record.getMessage()]
    assert len(printed) == 1


def test_training_writers_keep_detectron2s_others(tmp_path: Path) -> None:
    writers = training_writers(str(tmp_path), 100)
    assert isinstance(writers[0], OncePerIterationPrinter)
    assert any(isinstance(writer, JSONWriter) for writer in writers)
    for writer in writers:
        writer.close()
