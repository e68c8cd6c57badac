"""The micro setting of the tests that really train: the tiny config on 8 synthetic images of 128 px,
batch 2, no data-loader workers and no MAE initialisation — a training in seconds on the CPU."""

from __future__ import annotations

import shutil
from pathlib import Path

from mimdet.data.synthetic import make_synthetic_coco
from mimdet.run.config import EXPERIMENTS


def micro_dataset(folder: Path) -> Path:
    """8 train and 4 val images in ``folder`` (made once; the generator is idempotent)."""
    return make_synthetic_coco(folder, num_train=8, num_val=4, image_size=128).root


def micro_settings(data: Path) -> dict[str, object]:
    """Config key -> value of the micro setting, for overrides and for sweep specs."""
    return {
        "dataset_paths": {
            "micro_train": [f"{data}/annotations/instances_train.json", f"{data}/train"],
            "micro_val": [f"{data}/annotations/instances_val.json", f"{data}/val"],
        },
        "dataloader.train.dataset.names": "micro_train",
        "dataloader.test.dataset.names": "micro_val",
        "dataloader.train.total_batch_size": 2,
        "dataloader.train.num_workers": 0,
        "dataloader.test.num_workers": 0,
        "train.mae_checkpoint": "",
        "train.log_period": 2,
    }


def micro_overrides(data: Path) -> list[str]:
    """The micro setting as ``key=value`` command-line overrides."""
    paths = micro_settings(data)["dataset_paths"]
    assert isinstance(paths, dict)
    spelled = ",".join(f"{name}:[{json_file},{images}]" for name, (json_file, images) in paths.items())
    overrides = [f"dataset_paths={{{spelled}}}"]
    for key, value in micro_settings(data).items():
        if key != "dataset_paths":
            overrides.append(f"{key}=''" if value == "" else f"{key}={value}")
    return overrides


def edited_tiny_config(folder: Path, *statements: str) -> Path:
    """The tiny config with Python ``statements`` appended (values no shipped config holds), written into a
    copy of ``experiments/`` under ``folder`` so that its relative imports still resolve."""
    experiments = folder / "experiments"
    if not experiments.exists():
        shutil.copytree(EXPERIMENTS, experiments)
    config = experiments / "edited_tiny.py"
    names = "dataloader, dataset_paths, lr_multiplier, model, optimizer, train"
    config.write_text(f"from .tiny_mimdet import {names}\n\n" + "\n".join(statements) + "\n")
    return config
