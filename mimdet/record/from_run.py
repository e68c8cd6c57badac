"""Turning a finished (or failed) run into its ``RunRecord``: the variant read from the config, the
outcome measured by the run, the environment it ran in."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mimdet.modeling.attention import DEFAULT_BACKENDS
from mimdet.modeling.flavors import flavor_of
from mimdet.record.schema import (
    SCHEMA_VERSION,
    APMetrics,
    Cost,
    DatasetInfo,
    Metrics,
    ParamCounts,
    RecordError,
    RunRecord,
    Variant,
    read_record,
    utc_timestamp,
)
from mimdet.run.cost import PeakMemory, ShapeSplit
from mimdet.run.environment import code_version, hardware, versions

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass
class RunOutcome:
    """What the run measured; fields stay None where it did not get that far."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    iterations: int = 0
    train_wall_time_s: float | None = None
    sec_per_iter: float | None = None
    peak_memory: PeakMemory | None = None
    inference_images_per_s: float | None = None
    shape_split: ShapeSplit | None = None
    error: str | None = None


def variant_of(cfg: DictConfig) -> Variant:
    """The ablation settings of a config's backbone, in the record's terms."""
    backbone = cfg.model.backbone.bottom_up
    if _target_name(backbone._target_) == "BenchmarkingViT":
        flavor = flavor_of(_unresolved(backbone), "benchmarking")
        return Variant(
            "benchmarking",
            int(backbone.embed_dim),
            int(backbone.depth),
            "all",
            1.0,
            1.0,
            0,
            "vit",
            None,
            flavor,
        )
    decoders = int(backbone.num_decoders)
    return Variant(
        model="mimdet",
        embed_dim=int(backbone.embed_dim),
        depth=int(backbone.depth),
        sampling=backbone.get("sampling", "random"),
        train_sample_ratio=float(backbone.train_sample_ratio),
        test_sample_ratio=float(backbone.test_sample_ratio),
        num_decoders=decoders,
        fpn_inputs=backbone.get("fpn_inputs", "hybrid"),
        decoder_fill=backbone.get("decoder_fill", "mask_token") if decoders else None,
        flavor=flavor_of(_unresolved(backbone), "mimdet"),
    )


def _unresolved(node: DictConfig) -> dict:
    """A config node as written (interpolations kept), for comparing switches with a flavor's."""
    return typing.cast(dict, OmegaConf.to_container(node, resolve=False))


def _target_name(target: object) -> str:
    """The class name a LazyConfig ``_target_`` builds, whether the config holds the class itself (a
    loaded config file) or its dotted path (a config saved to YAML and read back)."""
    name = getattr(target, "__qualname__", None)
    return name if isinstance(name, str) else str(target).rsplit(".", 1)[-1]


def read_parent_run_id(checkpoint: str) -> str | None:
    """The run id of the training run whose folder holds ``checkpoint``, if it wrote a record."""
    record_path = Path(checkpoint).parent / "record.json"
    try:
        return read_record(record_path).run_id
    except RecordError:
        return None


def build_record(
    cfg: DictConfig,
    *,
    run_id: str,
    stage: str,
    parent_run_id: str | None,
    config_file: str,
    overrides: list[str],
    params: dict[str, int],
    outcome: RunOutcome,
    processes: int = 1,
) -> RunRecord:
    """The record of one run from its config and outcome (``processes``: the DDP world size)."""
    peak, split = outcome.peak_memory, outcome.shape_split
    return RunRecord(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        stage="eval" if stage == "eval" else "train",
        parent_run_id=parent_run_id,
        status="failed" if outcome.error else "completed",
        error=outcome.error,
        created_at=utc_timestamp(),
        output_dir=str(cfg.train.output_dir),
        config_file=config_file,
        overrides=overrides,
        code_version=code_version(),
        variant=variant_of(cfg),
        dataset=DatasetInfo(
            train=str(cfg.dataloader.train.dataset.names), test=str(cfg.dataloader.test.dataset.names)
        ),
        iterations=outcome.iterations,
        metrics=Metrics(bbox=_ap(outcome.metrics.get("bbox")), segm=_ap(outcome.metrics.get("segm"))),
        params=ParamCounts(total=params["total"], per_component=params),
        cost=Cost(
            train_wall_time_s=outcome.train_wall_time_s,
            sec_per_iter=outcome.sec_per_iter,
            peak_mem_bytes_bs1=peak.bytes if peak else None,
            peak_mem_kind=peak.kind if peak else None,
            inference_images_per_s=outcome.inference_images_per_s,
            sec_per_iter_repeated_shape=split.repeated_shape_s if split else None,
            sec_per_iter_new_shape=split.new_shape_s if split else None,
            batch_shapes=split.shapes if split else None,
            attention_backends=_attention_backends(cfg),
        ),
        hardware=hardware(str(cfg.train.device), processes),
        versions=versions(),
    )


def _attention_backends(cfg: DictConfig) -> list[str] | None:
    """The attention kernels a MIMDet backbone was allowed (None for backbones without the switch)."""
    backbone = cfg.model.backbone.bottom_up
    if "attention" in backbone:
        return list(backbone.attention)
    if _target_name(backbone._target_) == "MIMDetBackbone":
        return list(DEFAULT_BACKENDS)
    return None


def _ap(results: dict[str, float] | None) -> APMetrics:
    results = results or {}
    return APMetrics(**{key: results.get(key) for key in AP_KEYS})
