"""Where a training's progress goes: detectron2's default writers, the console one printing once.

detectron2's ``PeriodicWriter`` writes again in ``after_train``, which its train loop runs in a
``finally``. When the error that stops a training is raised inside the writers of an iteration (a
DataLoader worker killed by ``scancel`` is reported wherever the main process is at that moment),
``CommonMetricPrinter`` is asked for the same iteration twice before its timing history exists; its ETA
estimate then divides by the zero iterations since its last write, and that ``ZeroDivisionError``
replaced the run's own error in its record.
"""

from __future__ import annotations

from detectron2.engine import default_writers
from detectron2.utils.events import CommonMetricPrinter, EventWriter, get_event_storage


class OncePerIterationPrinter(CommonMetricPrinter):
    """``CommonMetricPrinter`` that skips an iteration it has already printed."""

    def __init__(self, max_iter: int | None = None, window_size: int = 20) -> None:
        super().__init__(max_iter, window_size)
        self._printed: int | None = None

    def write(self) -> None:
        iteration = get_event_storage().iter
        if iteration == self._printed:
            return
        self._printed = iteration
        super().write()


def training_writers(output_dir: str, max_iter: int) -> list[EventWriter]:
    """detectron2's default writers (console, metrics.json, TensorBoard), the console one printing once."""
    return [
        OncePerIterationPrinter(max_iter) if type(writer) is CommonMetricPrinter else writer
        for writer in default_writers(output_dir, max_iter)
    ]
