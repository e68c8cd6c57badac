"""Made-up run records for tests and benchmarks: complete and valid, so that a caller spells out only the
fields its check is about. One place builds them, so a new record field is added here once.

    example_record("ab12", stage="eval", variant=example_variant(test_sample_ratio=0.25), box=41.0)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mimdet.record.schema import (
    SCHEMA_VERSION,
    APMetrics,
    Cost,
    DatasetInfo,
    Hardware,
    Metrics,
    ParamCounts,
    RunRecord,
    Stage,
    Status,
    Variant,
)


def example_variant(**changes: Any) -> Variant:
    """The paper's ViT-B MIMDet (r = 0.5, 4 decoders) with ``changes`` (Variant fields by name)."""
    paper_vit_b = Variant("mimdet", 768, 12, "random", 0.5, 1.0, 4, "hybrid", "mask_token")
    return dataclasses.replace(paper_vit_b, **changes)


def example_record(
    run_id: str = "r00000",
    *,
    stage: Stage = "train",
    status: Status = "completed",
    variant: Variant | None = None,
    box: float | None = 40.0,
    mask: float | None = 35.0,
    **fields: Any,
) -> RunRecord:
    """A record of a ViT-B run on COCO (``example_variant()`` unless ``variant``) with box/mask AP
    ``box``/``mask``; ``fields`` replace any other RunRecord field by name. Each call builds its own
    sections, so a test that edits one record leaves the next alone. As a run writes them, only a
    training has a cost, an evaluation a parent, a failed run an error."""
    training = stage == "train"
    values: dict[str, Any] = dict(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        stage=stage,
        parent_run_id=None if training else "parent",
        status=status,
        error=None if status == "completed" else "RuntimeError: failed",
        created_at="2025-01-01T00:00:00+00:00",
        output_dir=f"runs/{run_id}",
        config_file="experiments/mimdet_vit_base.py",
        overrides=[],
        code_version="example",
        variant=example_variant() if variant is None else variant,
        dataset=DatasetInfo("coco_2017_train", "coco_2017_val"),
        iterations=67_500,
        metrics=Metrics(APMetrics(box, *[None] * 5), APMetrics(mask, *[None] * 5)),
        params=ParamCounts(127_954_768, {"encoder": 85_000_000}),
        cost=Cost(3600.0, 0.5, 2_000_000_000, "cuda_max_allocated", None)
        if training
        else Cost(None, None, None, None, None),
        hardware=Hardware("cuda", "NVIDIA H100", 1, None),
        versions={"python": "3.11"},
    )
    return RunRecord(**{**values, **fields})
