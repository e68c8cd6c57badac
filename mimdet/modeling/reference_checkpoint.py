"""Checkpoints written by the reference code (hustvl/MIMDet) in this project's layout.

The reference code saves the whole detector (detectron2's ``GeneralizedRCNN``): FPN, RPN and ROI heads
have detectron2's names on both sides; only the backbone's own modules are named differently:

- MIMDet: ``encoder.patch_embed.proj.S`` (the ConvStem) -> ``stem.stages.S``, ``decoder.decoder_embed`` /
  ``decoder_pos_embed`` / ``decoder_blocks`` / ``decoder_norm`` -> ``decoder.embed`` / ``pos_embed`` /
  ``blocks`` / ``norm``, and ``decoder.conv_feat_proj`` -> ``decoder.fill_proj``.
- Benchmarking ViT: ``ms_adaptor`` -> ``adaptors``; the shared relative-position tables
  ``{windowed,global}_rel_pos_bias.relative_position_bias_table`` -> ``{windowed,global}_rel_pos.bias_table``
  (their ``relative_position_index`` buffers are derived, recomputed here, and dropped).

Which model a checkpoint holds follows from its keys and the encoder width; each has a ``*_reference.py``
config whose model the tensors must fit exactly; ``checkpoint.convert_state`` maps them (a pure function),
``convert`` adds the files and the checks (``python -m mimdet.convert_reference`` is its command line).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from mimdet.run.config import build_model, load_config

from .checkpoint import (
    CheckpointError,
    KeyMap,
    LoadReport,
    convert_state,
    group_keys,
    read_state,
    save_torch_file,
)

_BOTTOM_UP = "backbone.bottom_up."
_DETECTOR = tuple((prefix, prefix) for prefix in ("backbone", "proposal_generator", "roi_heads"))

MIMDET_KEY_MAP: KeyMap = (
    *(
        (_BOTTOM_UP + source, _BOTTOM_UP + target)
        for source, target in (
            ("encoder.patch_embed.proj", "stem.stages"),
            ("decoder.decoder_embed", "decoder.embed"),
            ("decoder.decoder_pos_embed", "decoder.pos_embed"),
            ("decoder.decoder_blocks", "decoder.blocks"),
            ("decoder.decoder_norm", "decoder.norm"),
            ("decoder.conv_feat_proj", "decoder.fill_proj"),
        )
    ),
    *_DETECTOR,
)

BENCHMARKING_KEY_MAP: KeyMap = (
    *(
        (_BOTTOM_UP + source, _BOTTOM_UP + target)
        for source, target in (
            ("ms_adaptor", "adaptors"),
            ("windowed_rel_pos_bias.relative_position_bias_table", "windowed_rel_pos.bias_table"),
            ("global_rel_pos_bias.relative_position_bias_table", "global_rel_pos.bias_table"),
        )
    ),
    *_DETECTOR,
)


@dataclass(frozen=True)
class ReferenceModel:
    """A model of the reference code: how to recognise its checkpoint and where its tensors go."""

    name: str
    config: str  # under experiments/
    key_map: KeyMap
    signature: str  # a key only this family's checkpoints have
    width_key: str  # a (D,) tensor that tells the encoder width
    width: int


REFERENCE_MODELS = (
    ReferenceModel(
        "MIMDet ViT-B",
        "mimdet_vit_base_reference.py",
        MIMDET_KEY_MAP,
        _BOTTOM_UP + "encoder.patch_embed.proj.0.0.weight",
        _BOTTOM_UP + "encoder.norm.weight",
        768,
    ),
    ReferenceModel(
        "MIMDet ViT-L",
        "mimdet_vit_large_reference.py",
        MIMDET_KEY_MAP,
        _BOTTOM_UP + "encoder.patch_embed.proj.0.0.weight",
        _BOTTOM_UP + "encoder.norm.weight",
        1024,
    ),
    ReferenceModel(
        "Benchmarking ViT-B",
        "benchmarking_vit_base_reference.py",
        BENCHMARKING_KEY_MAP,
        _BOTTOM_UP + "windowed_rel_pos_bias.relative_position_bias_table",
        _BOTTOM_UP + "patch_embed.proj.bias",
        768,
    ),
)


def detect_reference_model(state: Mapping[str, torch.Tensor]) -> ReferenceModel:
    """The reference model whose checkpoint ``state`` is, or a CheckpointError saying why none fits."""
    families = [model for model in REFERENCE_MODELS if model.signature in state]
    if not families:
        raise CheckpointError(
            "not a checkpoint of the reference code: no key of its MIMDet (encoder.patch_embed.proj) or "
            "Benchmarking ViT (windowed_rel_pos_bias) backbones under backbone.bottom_up"
        )
    width_key = families[0].width_key
    if width_key in state and state[width_key].dim() != 1:  # the encoder's last norm: one weight a channel
        shape = tuple(state[width_key].shape)
        raise CheckpointError(f"{width_key}: shape {shape}, expected one dimension (the encoder's width)")
    width = state[width_key].shape[0] if width_key in state else None
    for model in families:
        if model.width == width:
            return model
    known = ", ".join(f"{model.name} ({model.width})" for model in families)
    raise CheckpointError(
        f"a reference checkpoint of encoder width {width}, but configs exist only for {known}"
    )


KEY_DEPTH = 4  # key groups in the summary: e.g. backbone.bottom_up.decoder.blocks (48)


def convert(src: Path, dst: Path) -> tuple[ReferenceModel, LoadReport]:
    """Write ``src`` converted to ``dst``; the model it holds and what went where. ``dst`` must be another
    file than ``src``, which is the only copy of the reference weights; an ``OSError`` of the write goes on
    (the caller says what the file system refused)."""
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise CheckpointError(f"{dst}: is {src}, the checkpoint converted (allowed: another file)")
    state = read_state(src, "a checkpoint of the reference code", bare=True)
    try:
        model = detect_reference_model(state)
        target = build_model(load_config(model.config), "meta").state_dict()  # shapes only
        converted, dropped = convert_state(state, target, model.key_map)
    except CheckpointError as error:
        raise CheckpointError(f"{src}: {error}") from None
    report = LoadReport(sorted(converted), sorted(set(target) - set(converted)), sorted(dropped))
    if report.missing:
        raise CheckpointError(
            f"{src}: {model.name} checkpoint without {len(report.missing)} of the model's {len(target)} "
            f"tensors: {group_keys(report.missing, KEY_DEPTH, limit=6)} (its keys with no place: "
            f"{group_keys(report.unexpected, KEY_DEPTH, limit=6)})"
        )
    save_torch_file({"model": converted}, dst)
    return model, report
