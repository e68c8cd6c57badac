"""The reference flavor computes the reference code's function, pinned without the reference code.

``tests/data/reference_flavor_golden.pt`` was made once, by ``scripts/verify_reference_flavor.py golden``,
from tiny models of the reference code (hustvl/MIMDet at fb0aaa1: ``models/mimdet.py`` and
``models/benchmarking.py`` inside detectron2's FPN) with random float16-valued weights, after checking
that the tiny models below, loaded through the converter's key mapping, give the same FPN outputs in
float64 (relative L2 < 1e-15). Per model it holds
the reference checkpoint's state dict (keys, shapes, one flat float16 tensor, integer buffers), the padded
images, and the reference's FPN outputs p2-p6 at each sample ratio. The MIMDet images are a 64x64 one
and a 32x48 one padded to 64x64: at ratio 0.75 the small one keeps 6 padding tokens, so the golden
outputs pin the reference's choice among them too. (``padding_order="tied"`` reproduces that choice
through torch's sort; a torch release that changes how its sort breaks ties would change it in the
reference code too, and this test would say so.)
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from torch import nn

from mimdet.convert_reference import main as convert_main
from mimdet.modeling import BenchmarkingViT, MIMDetBackbone
from mimdet.modeling.checkpoint import KeyMap, convert_state, rename_key
from mimdet.modeling.flavors import FLAVORS
from mimdet.modeling.reference_checkpoint import (
    BENCHMARKING_KEY_MAP,
    MIMDET_KEY_MAP,
    REFERENCE_MODELS,
    detect_reference_model,
)
from mimdet.modeling.rel_pos_bias import SharedRelPosBias
from mimdet.modeling.token_sampler import sample_tokens
from mimdet.run.config import build_model, load_config

GOLDEN_FILE = Path(__file__).parent / "data" / "reference_flavor_golden.pt"
LEVELS = ("p2", "p3", "p4", "p5", "p6")
INDEX_BUFFERS = {
    "backbone.bottom_up.windowed_rel_pos_bias.relative_position_index",
    "backbone.bottom_up.global_rel_pos_bias.relative_position_index",
}


def tiny_mimdet(**switches: object) -> nn.Module:
    """The golden MIMDet: D=16, 2 blocks, 1 decoder of width 8, FPN of width 4, reference flavor."""
    bottom_up = MIMDetBackbone(
        embed_dim=16,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        pos_grid=6,
        drop_path_rate=0.0,
        num_decoders=1,
        decoder_dim=8,
        decoder_heads=2,
        norm="BN",
        **{**FLAVORS["reference"].mimdet, **switches},
    )
    return _fpn(bottom_up)


def tiny_benchmarking() -> nn.Module:
    """The golden Benchmarking ViT: 64 px (4x4 tokens), D=32, 8 blocks alternating 2x2 windows and global."""
    bottom_up = BenchmarkingViT(
        img_size=64,
        embed_dim=32,
        depth=8,
        num_heads=2,
        mlp_ratio=1.0,
        drop_path_rate=0.0,
        window_size=2,
        global_every=2,
        **FLAVORS["reference"].benchmarking,
    )
    return _fpn(bottom_up)


def _fpn(bottom_up: nn.Module) -> nn.Module:
    return FPN(
        bottom_up=bottom_up,
        in_features=["c2", "c3", "c4", "c5"],
        out_channels=4,
        norm="BN",
        top_block=LastLevelMaxPool(),
    )


MODELS = {"mimdet": (tiny_mimdet, MIMDET_KEY_MAP), "benchmarking": (tiny_benchmarking, BENCHMARKING_KEY_MAP)}


@functools.cache
def golden() -> dict[str, Any]:
    """The stored file (read once; ``scripts/verify_reference_flavor.py golden`` writes it)."""
    return torch.load(GOLDEN_FILE, weights_only=True)


def reference_state(name: str) -> dict[str, torch.Tensor]:
    """The stored reference checkpoint (its keys under ``backbone.``, as in a whole detector)."""
    packed = golden()[name]["state"]
    values = packed["values"].split([math.prod(shape) for shape in packed["shapes"]])
    state = {
        key: value.reshape(shape).float()
        for key, value, shape in zip(packed["keys"], values, packed["shapes"], strict=True)
    }
    return {**state, **packed["buffers"]}


def target_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"backbone.{key}": value for key, value in model.state_dict().items()}


def loaded(name: str, model: nn.Module) -> nn.Module:
    """``model`` with the golden reference weights, converted, in float64 evaluation mode."""
    converted, _ = convert_state(reference_state(name), target_state(model), MODELS[name][1])
    model.load_state_dict({key.removeprefix("backbone."): value for key, value in converted.items()})
    return model.double().eval()


def fpn_outputs(model: nn.Module, name: str, ratio: float) -> dict[str, torch.Tensor]:
    if isinstance(model.bottom_up, MIMDetBackbone):
        model.bottom_up.test_sample_ratio = ratio
        model.bottom_up.eval()  # re-seeds the evaluation draw (eval_seed 0, as the golden run's seed)
    with torch.no_grad():
        return model(golden()[name]["images"].double())


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(("name", "ratio"), [("mimdet", 1.0), ("mimdet", 0.75), ("benchmarking", 1.0)])
def test_reference_flavor_reproduces_the_reference_fpn_outputs(name: str, ratio: float) -> None:
    model = loaded(name, MODELS[name][0]())
    outputs = fpn_outputs(model, name, ratio)
    expected = golden()[name]["outputs"][ratio]
    assert {level: rel_l2(outputs[level], expected[level]) <= 1e-12 for level in LEVELS} == dict.fromkeys(
        LEVELS, True
    )


@pytest.mark.parametrize(
    "switch", ["stem_norm", "layer_norm_eps", "c5_pool", "padding_order"], ids=lambda s: f"paper {s}"
)
def test_each_mimdet_switch_at_its_paper_value_changes_the_function(switch: str) -> None:
    model = loaded("mimdet", tiny_mimdet(**{switch: FLAVORS["paper"].mimdet[switch]}))
    outputs = fpn_outputs(model, "mimdet", 0.75)  # 0.75: padding tokens are kept
    expected = golden()["mimdet"]["outputs"][0.75]
    assert max(rel_l2(outputs[level], expected[level]) for level in LEVELS) > 1e-8


def test_the_reference_keys_map_one_to_one_except_derived_index_buffers() -> None:
    for name, (make, key_map) in MODELS.items():
        source = reference_state(name)
        before = {key: value.clone() for key, value in source.items()}
        target = target_state(make())
        converted, dropped = convert_state(source, target, key_map)
        assert set(converted) == set(target)
        assert set(dropped) == (INDEX_BUFFERS if name == "benchmarking" else set())
        assert all(torch.equal(before[key], source[key]) for key in source)  # a pure function
    converted, _ = convert_state(reference_state("mimdet"), target_state(tiny_mimdet()), MIMDET_KEY_MAP)
    source = reference_state("mimdet")
    assert torch.equal(
        converted["backbone.bottom_up.stem.stages.3.3.bias"],
        source["backbone.bottom_up.encoder.patch_embed.proj.3.3.bias"],
    )
    assert torch.equal(
        converted["backbone.bottom_up.decoder.fill_proj.weight"],
        source["backbone.bottom_up.decoder.conv_feat_proj.weight"],
    )


def _inverse(key_map: KeyMap) -> KeyMap:
    return tuple((model_prefix, source_prefix) for source_prefix, model_prefix in key_map)


@pytest.mark.parametrize("name", list(MODELS))
def test_key_mapping_round_trip(name: str) -> None:
    """Our names -> the reference's (exactly the reference code's key set) -> ours, every tensor equal."""
    make, key_map = MODELS[name]
    ours = target_state(make())
    as_reference = {rename_key(key, _inverse(key_map)): value for key, value in ours.items()}
    assert set(as_reference) == set(reference_state(name)) - INDEX_BUFFERS
    back, dropped = convert_state(as_reference, ours, key_map)
    assert not dropped and set(back) == set(ours)
    assert all(torch.equal(back[key], ours[key]) for key in ours)


def test_unmatched_keys_are_exactly_those_without_a_place() -> None:
    """A first-release checkpoint (mask token, no ConvStem projection) and a stray key."""
    source = reference_state("mimdet")
    source.pop("backbone.bottom_up.decoder.conv_feat_proj.weight")
    source.pop("backbone.bottom_up.decoder.conv_feat_proj.bias")
    source["backbone.bottom_up.decoder.mask_token"] = torch.zeros(1, 1, 8)
    source["optimizer_state_leftover"] = torch.zeros(1)
    target = target_state(tiny_mimdet())
    converted, dropped = convert_state(source, target, MIMDET_KEY_MAP)
    assert set(dropped) == {"backbone.bottom_up.decoder.mask_token", "optimizer_state_leftover"}
    assert set(target) - set(converted) == {
        "backbone.bottom_up.decoder.fill_proj.weight",
        "backbone.bottom_up.decoder.fill_proj.bias",
    }


def _signature_state(model_name: str, width: int) -> dict[str, torch.Tensor]:
    model = next(m for m in REFERENCE_MODELS if m.name == model_name)
    return {model.signature: torch.zeros(1), model.width_key: torch.zeros(width)}


@pytest.mark.parametrize(
    ("model_name", "width"), [("MIMDet ViT-B", 768), ("MIMDet ViT-L", 1024), ("Benchmarking ViT-B", 768)]
)
def test_detects_which_reference_model(model_name: str, width: int) -> None:
    model = detect_reference_model(_signature_state(model_name, width))
    assert model.name == model_name and model.config.endswith("_reference.py")


def test_unknown_width_and_foreign_checkpoints_are_one_clear_error() -> None:
    with pytest.raises(
        ValueError, match=r"encoder width 384, but configs exist only for MIMDet ViT-B \(768\)"
    ):
        detect_reference_model(_signature_state("MIMDet ViT-B", 384))
    with pytest.raises(ValueError, match="not a checkpoint of the reference code"):
        detect_reference_model({"blocks.0.norm1.weight": torch.zeros(8), "mask_token": torch.zeros(1, 1, 8)})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint", "not a readable torch checkpoint"),
        ({"model": {"blocks.0.norm1.weight": torch.zeros(8)}}, "not a checkpoint of the reference code"),
        ({"optimizer": [1, 2]}, "not a checkpoint of the reference code: expected"),
        ({}, "not a checkpoint of the reference code: expected"),
        (None, "no such checkpoint file"),
        (
            {
                "backbone.bottom_up.encoder.patch_embed.proj.0.0.weight": torch.zeros(96, 3, 3, 3),
                "backbone.bottom_up.encoder.norm.weight": torch.zeros(768),
                "backbone.bottom_up.encoder.pos_embed": torch.zeros(1, 197, 768),
            },
            r"pos_embed: checkpoint shape \(1, 197, 768\) does not fit",
        ),
        (
            {
                "backbone.bottom_up.encoder.patch_embed.proj.0.0.weight": torch.zeros(96, 3, 3, 3),
                "backbone.bottom_up.encoder.norm.weight": torch.zeros(768),
            },
            "MIMDet ViT-B checkpoint without 328 of the model's 330 tensors: "
            r"backbone.bottom_up.decoder.blocks \(48\), .* more groups \(its keys with no place: none\)",
        ),
        (
            {
                "model": {
                    "backbone.bottom_up.encoder.patch_embed.proj.0.0.weight": torch.zeros(3),
                    "backbone.bottom_up.encoder.norm.weight": torch.tensor(1.0),
                }
            },
            r"encoder.norm.weight: shape \(\), expected one dimension \(the encoder's width\)$",
        ),
        (
            {7: torch.zeros(1), "backbone.bottom_up.encoder.patch_embed.proj.0.0.weight": torch.zeros(3)},
            r"not a checkpoint of the reference code: 1 keys of its state dict are not tensor names "
            r"\(first: 7\)$",
        ),
    ],
    ids=[
        "garbage",
        "mae",
        "no tensors",
        "empty",
        "absent",
        "wrong shape",
        "partial",
        "scalar width",
        "int key",
    ],
)
def test_cli_exits_2_with_one_line_on_a_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object, message: str
) -> None:
    src, dst = tmp_path / "src.pth", tmp_path / "dst.pth"
    if isinstance(content, bytes):
        src.write_bytes(content)
    elif content is not None:
        torch.save(content, src)
    assert convert_main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(src) in err
    assert re.search(message, err), err
    assert not dst.exists()


def test_tied_padding_keeps_the_reference_codes_choice_on_an_image_smaller_than_the_kept_count() -> None:
    """4x6 tokens, ratio 0.75 keeps 18; image 1 is real everywhere, image 2 only in its top-left 2x3.

    The expected indices are what the reference code's ``random_masking`` kept after
    ``torch.manual_seed(0)`` (torch 2.14 on the CPU): all 6 real tokens of image 2, then 12 padding tokens
    that are the last ones, not the first ones in raster order."""
    valid = torch.ones(2, 4, 6, dtype=torch.bool)
    valid[1] = False
    valid[1, :2, :3] = True
    valid = valid.flatten(1)
    tied = sample_tokens(valid, 0.75, generator=torch.Generator().manual_seed(0), padding_order="tied")
    assert tied.tolist() == [
        [0, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 18, 19, 20, 22],
        [0, 1, 2, 6, 7, 8, *range(12, 24)],
    ]
    drawn = sample_tokens(valid, 0.75, generator=torch.Generator().manual_seed(0), padding_order="random")
    assert torch.equal(drawn[0], tied[0])  # the same draw: the same real tokens
    assert set(drawn[1].tolist()) >= {0, 1, 2, 6, 7, 8}


def test_presets_name_constructor_arguments_and_paper_is_the_default() -> None:
    for cls, field in ((MIMDetBackbone, "mimdet"), (BenchmarkingViT, "benchmarking")):
        parameters = inspect.signature(cls.__init__).parameters
        paper, reference = getattr(FLAVORS["paper"], field), getattr(FLAVORS["reference"], field)
        assert set(paper) == set(reference) and set(paper) <= set(parameters)
        literal = {key: value for key, value in paper.items() if not str(value).startswith("${")}  # not links
        assert literal == {key: parameters[key].default for key in literal}
        assert any(paper[key] != reference[key] for key in paper)


def test_shared_table_rejects_a_grid_larger_than_its_own() -> None:
    table = SharedRelPosBias(4, num_heads=2)
    assert table((3, 4)).shape == (2, 12, 12)
    with pytest.raises(ValueError, match="5x4 token grid is larger than the 4x4 grid"):
        table((5, 4))


def _released_vit_base(src: Path) -> dict[str, torch.Tensor]:
    """Write a whole ViT-B detector in the reference code's names (zero tensors of the right shapes) to
    ``src``; the project's state dict it converts to."""
    ours = build_model(load_config("mimdet_vit_base_reference.py"), "meta").state_dict()
    storage = torch.zeros(max(t.numel() for t in ours.values()))  # one storage: a small file, views of it
    source = {
        rename_key(key, _inverse(MIMDET_KEY_MAP)): storage[: t.numel()].view(t.shape).to(t.dtype)
        for key, t in ours.items()
    }
    torch.save({"model": source, "iteration": 270000}, src)
    return ours


def test_cli_refuses_to_write_over_its_source_and_a_refused_write_is_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: DST = SRC replaced the reference weights with the converted ones (a second conversion then
    failed: the only copy was gone), and a write the file system refused was exit 2, as bad input."""
    src = tmp_path / "released.pth"
    _released_vit_base(src)
    original = src.read_bytes()
    assert convert_main([str(src), str(tmp_path / "." / "released.pth")]) == 2
    assert f"is {src}, the checkpoint converted (allowed: another file)" in capsys.readouterr().err
    assert src.read_bytes() == original
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder").mkdir()
    assert convert_main([str(src), str(tmp_path / "a_file" / "vitb.pth")]) == 4
    assert (
        capsys.readouterr().err
        == f"mimdet.convert_reference: error: {tmp_path / 'a_file'} is a file, not a folder\n"
    )
    assert convert_main([str(src), str(tmp_path / "a_folder")]) == 4
    assert "is a directory (writing " in capsys.readouterr().err


def test_cli_converts_a_full_size_checkpoint_into_a_new_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole ViT-B detector in the reference code's names (zero tensors of the right shapes)
    -> the project's names, written into a folder that did not exist, loadable as ``init_checkpoint``."""
    src, dst = tmp_path / "released.pth", tmp_path / "released" / "vitb.pth"
    ours = _released_vit_base(src)
    assert convert_main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "MIMDet ViT-B" in out and "mimdet_vit_base_reference.py" in out
    converted = torch.load(dst, weights_only=True)["model"]
    assert {key: t.shape for key, t in converted.items()} == {key: t.shape for key, t in ours.items()}
