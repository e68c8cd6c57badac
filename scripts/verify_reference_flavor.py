"""Check the reference flavor against the reference code itself, and remake the tests' golden file.

Not a test: it needs a copy of the reference code (hustvl/MIMDet), which CI does not have.

    python scripts/verify_reference_flavor.py --reference ~/src/MIMDet vitb bench [vitl]
    python scripts/verify_reference_flavor.py --reference ~/src/MIMDet golden

``vitb`` / ``vitl`` / ``bench``: the reference code's own detector, built from its config with random
weights, saved as detectron2 saves it, converted by ``python -m mimdet.convert_reference``, loaded into the
``*_reference.py`` config through ``DetectionCheckpointer`` (as ``train.init_checkpoint`` does); then the
parameter counts and, on the same float64 images, FPN p2-p6 (relative L2 per level; MIMDet at sample
ratios 1.0 and 0.5, with an image small enough to keep padding tokens at 0.5). ``golden``: the same
check on the tiny models of ``tests/test_reference_flavor.py``; if it passes, their inputs and the
reference's outputs are written to ``tests/data/reference_flavor_golden.pt``.

The reference code needs ``np.float`` (gone since numpy 1.24; restored here) and einops (a stand-in
covering its four ``rearrange`` patterns is used when einops is not installed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import types
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.structures import ImageList
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.test_reference_flavor: the tiny models and the golden file's format

from mimdet.modeling.checkpoint import convert_state  # noqa: E402
from mimdet.modeling.param_count import count_parameters  # noqa: E402
from mimdet.run.config import build_model, load_config  # noqa: E402
from tests.test_reference_flavor import GOLDEN_FILE, LEVELS, MODELS, rel_l2  # noqa: E402

FULL = {  # ours -> (the reference config, image sizes, sample ratios)
    "vitb": (
        "mimdet_vit_base_reference.py",
        "mimdet/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py",
        [(320, 480), (192, 224)],
        (1.0, 0.5),
    ),
    "vitl": (
        "mimdet_vit_large_reference.py",
        "mimdet/mimdet_vit_large_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py",
        [(256, 320), (160, 224)],
        (1.0, 0.5),
    ),
    "bench": (
        "benchmarking_vit_base_reference.py",
        "benchmarking/benchmarking_mask_rcnn_base_FPN_100ep_LSJ_mae.py",
        [(1024, 768)],
        (1.0,),
    ),
}


def import_reference(path: Path) -> types.ModuleType:
    """The reference code's ``models`` package, with what it needs from older numpy and einops."""
    np.float = float  # type: ignore[attr-defined]
    try:
        import einops  # noqa: F401
    except ImportError:
        sys.modules["einops"] = types.SimpleNamespace(rearrange=_rearrange)  # type: ignore[assignment]
    sys.path.insert(0, str(path))
    import models

    return models


def _rearrange(x: torch.Tensor, pattern: str, **sizes: int) -> torch.Tensor:
    """The four einops patterns of the reference Benchmarking ViT."""
    if pattern == "b (h w) c -> b h w c":
        return x.reshape(x.shape[0], sizes["h"], sizes["w"], x.shape[-1])
    if pattern == "b (h w) c -> b c h w":
        return x.reshape(x.shape[0], sizes["h"], sizes["w"], x.shape[-1]).permute(0, 3, 1, 2)
    h1, w1, c = sizes["h1"], sizes["w1"], x.shape[-1]
    if pattern == "b (h h1) (w w1) c -> (b h w) (h1 w1) c":
        b, height, width, _ = x.shape
        x = x.reshape(b, height // h1, h1, width // w1, w1, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, h1 * w1, c)
    if pattern == "(b h w) (h1 w1) c -> b (h h1 w w1) c":
        h, w = sizes["h"], sizes["w"]
        x = x.reshape(-1, h, w, h1, w1, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(x.shape[0], h * h1 * w * w1, c)
    raise NotImplementedError(pattern)


def randomize(model: nn.Module, seed: int, half: bool = False) -> None:
    """Every float tensor of the state dict random at a sensible scale (norm scales near 1, BN variances
    positive, position and relative-position tables large enough to matter); ``half``: float16 values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            r = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                value = 0.5 + r.abs()
            elif leaf == "running_mean":
                value = 0.1 * r
            elif leaf == "weight" and tensor.dim() == 1:
                value = 1.0 + 0.1 * r
            elif "rel_pos" in name or "pos_embed" in name:
                value = 0.5 * r
            elif tensor.dim() == 1:
                value = 0.05 * r
            else:
                value = r / tensor[0].numel() ** 0.5
            tensor.copy_(value.half() if half else value)


def images(sizes: list[tuple[int, int]], square: int = 0) -> ImageList:
    """Normalised float64 images (float16 values, so the golden file stores them exactly), zero-padded."""
    generator = torch.Generator().manual_seed(2)
    tensors = [torch.randn(3, h, w, generator=generator).half().double() for h, w in sizes]
    constraints = {"square_size": square} if square else None
    return ImageList.from_tensors(tensors, size_divisibility=32, padding_constraints=constraints)


def fpn_pair(theirs: nn.Module, ours: nn.Module, batch: ImageList, ratio: float) -> tuple[dict, dict]:
    """Both FPNs on ``batch`` at ``ratio``, the reference's token draw seeded as ours (eval_seed 0)."""
    if hasattr(theirs.bottom_up, "sample_ratio"):
        theirs.bottom_up.sample_ratio = ratio
        ours.bottom_up.test_sample_ratio = ratio
        ours.bottom_up.eval()  # restarts its evaluation draws
    with torch.no_grad():
        torch.manual_seed(0)
        return theirs(batch), ours(batch.tensor)


def check_full(reference: types.ModuleType, kind: str, root: Path) -> None:
    config, reference_config, sizes, ratios = FULL[kind]
    started = time.perf_counter()
    cfg = LazyConfig.load(str(root / "configs" / reference_config))
    bottom_up = cfg.model.backbone.bottom_up
    if "encoder" in bottom_up:
        bottom_up.encoder.update(pretrained=None, checkpointing=False)
        bottom_up.decoder.checkpointing = False
    else:
        bottom_up.pretrained = ""
    theirs = instantiate(cfg.model)
    randomize(theirs, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "reference.pth", Path(tmp) / "converted.pth"
        torch.save({"model": theirs.state_dict(), "iteration": 0}, src)  # as detectron2's Checkpointer
        command = [sys.executable, "-m", "mimdet.convert_reference", str(src), str(dst)]
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[0])
        ours = build_model(load_config(config))
        DetectionCheckpointer(ours).load(str(dst))
    theirs_count, ours_count = sum(p.numel() for p in theirs.parameters()), count_parameters(ours)["total"]
    print(f"{kind}: parameters: reference {theirs_count:,}, ours {ours_count:,}")
    theirs, ours = theirs.double().eval(), ours.double().eval()
    batch = images(sizes, square=1024 if kind == "bench" else 0)
    for ratio in ratios:
        outputs_theirs, outputs_ours = fpn_pair(theirs.backbone, ours.backbone, batch, ratio)
        errors = {level: rel_l2(outputs_ours[level], outputs_theirs[level]) for level in LEVELS}
        print(
            f"{kind} ratio {ratio} images {sizes}: relative L2 "
            + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        )
    print(f"{kind}: {time.perf_counter() - started:.0f} s")


def tiny_references(reference: types.ModuleType) -> dict[str, nn.Module]:
    """The reference code's twins of the tests' tiny models (the same widths, depths and FPN)."""
    fpn = dict(out_channels=4, norm="BN", top_block=LastLevelMaxPool())
    encoder = reference.MIMDetEncoder(
        img_size=96,
        embed_dim=16,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-5),
    )
    decoder = reference.MIMDetDecoder(
        img_size=96, embed_dim=16, decoder_embed_dim=8, depth=1, num_heads=2, mlp_ratio=2.0
    )
    mimdet = reference.MIMDetBackbone(encoder, decoder, 1.0, 32, _out_feature_channels=[4, 8, 8, 8])
    benchmarking = reference.BenchmarkingViTDet(
        window_size=2, sincos_pos_embed=True, img_size=64, embed_dim=32, depth=8, num_heads=2, mlp_ratio=1.0
    )
    return {
        "mimdet": FPN(bottom_up=mimdet, in_features=["c2", "c3", "c4", "c5"], **fpn),
        "benchmarking": FPN(bottom_up=benchmarking, in_features=["s0", "s1", "s2", "s3"], **fpn),
    }


def pack(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Float tensors as one flat float16 tensor (their values are float16 already), keys and shapes."""
    floats = {key: value for key, value in state.items() if value.is_floating_point()}
    return {
        "keys": list(floats),
        "shapes": [tuple(value.shape) for value in floats.values()],
        "values": torch.cat([value.reshape(-1) for value in floats.values()]).half(),
        "buffers": {key: value for key, value in state.items() if not value.is_floating_point()},
    }


def make_golden(reference: types.ModuleType) -> None:
    golden = {}
    for (name, theirs), sizes, ratios in zip(
        tiny_references(reference).items(),
        ([(64, 64), (32, 48)], [(64, 48)]),
        ((1.0, 0.75), (1.0,)),
        strict=True,
    ):
        randomize(theirs, seed=3, half=True)
        state = {f"backbone.{key}": value.clone() for key, value in theirs.state_dict().items()}
        make, key_map = MODELS[name]
        ours = make()
        converted, _ = convert_state(
            state, {f"backbone.{k}": v for k, v in ours.state_dict().items()}, key_map
        )
        ours.load_state_dict({key.removeprefix("backbone."): value for key, value in converted.items()})
        theirs, ours = theirs.double().eval(), ours.double().eval()
        batch = images(sizes, square=64 if name == "benchmarking" else 0)
        outputs = {}
        for ratio in ratios:
            outputs_theirs, outputs_ours = fpn_pair(theirs, ours, batch, ratio)
            worst = max(rel_l2(outputs_ours[level], outputs_theirs[level]) for level in LEVELS)
            print(f"tiny {name} ratio {ratio}: max relative L2 {worst:.1e}")
            if worst > 1e-12:
                raise SystemExit(f"tiny {name} differs from the reference code: golden file left as it was")
            outputs[ratio] = outputs_theirs
        golden[name] = {"state": pack(state), "images": batch.tensor.half(), "outputs": outputs}
    torch.save(golden, GOLDEN_FILE)
    print(f"wrote {GOLDEN_FILE} ({GOLDEN_FILE.stat().st_size:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of hustvl/MIMDet")
    parser.add_argument("checks", nargs="+", choices=[*FULL, "golden"])
    args = parser.parse_args()
    reference = import_reference(args.reference)
    for check in args.checks:
        if check == "golden":
            make_golden(reference)
        else:
            check_full(reference, check, args.reference)


if __name__ == "__main__":
    main()
