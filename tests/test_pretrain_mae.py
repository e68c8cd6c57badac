"""The tiny MAE pre-training: official checkpoint format, falling loss, masking, loading, caching.

Runs are short (a few steps, 64 px crops where the grid size does not matter) but go through the real
``pretrain`` on real synthetic images.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from mimdet import pretrain_mae
from mimdet.data.synthetic import make_synthetic_coco
from mimdet.modeling.checkpoint import load_mae_checkpoint, read_mae_state
from mimdet.modeling.mae import MaskedAutoencoder
from mimdet.pretrain_mae import ensure_tiny_mae_checkpoint, pretrain
from mimdet.run.config import build_model, load_config
from mimdet.run.resolve import resolve_run
from tests.stalling import interrupted_at_its_stall

D, DEPTH, E, DECODERS = 64, 4, 64, 8
BLOCK_KEYS = [
    f"{module}.{param}"
    for module in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
    for param in ("weight", "bias")
]


def mae_keys(depth: int, decoders: int) -> set[str]:
    """The key set of an official MAE checkpoint (``models_mae.py``'s ``MaskedAutoencoderViT``)."""
    return (
        {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"}
        | {f"blocks.{i}.{k}" for i in range(depth) for k in BLOCK_KEYS}
        | {"norm.weight", "norm.bias", "mask_token", "decoder_embed.weight", "decoder_embed.bias"}
        | {"decoder_pos_embed", "decoder_norm.weight", "decoder_norm.bias"}
        | {f"decoder_blocks.{i}.{k}" for i in range(decoders) for k in BLOCK_KEYS}
        | {"decoder_pred.weight", "decoder_pred.bias"}
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset root (its ``train/`` split is what pre-training reads)."""
    return make_synthetic_coco(tmp_path_factory.mktemp("synthetic"), num_train=24, num_val=1).root


@pytest.fixture(scope="module")
def checkpoint(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint at the official 224 px (14x14 tables) with 8 decoders, after a few steps."""
    path = tmp_path_factory.mktemp("mae") / "mae_tiny.pth"
    pretrain(images, path, steps=3, batch_size=2, decoder_depth=DECODERS)
    return path


def test_checkpoint_has_exactly_the_official_keys_and_shapes(checkpoint: Path) -> None:
    state = read_mae_state(checkpoint)
    assert set(state) == mae_keys(DEPTH, DECODERS)
    assert state["pos_embed"].shape == (1, 197, D) and state["decoder_pos_embed"].shape == (1, 197, E)
    assert state["patch_embed.proj.weight"].shape == (D, 3, 16, 16)
    assert state["cls_token"].shape == (1, 1, D) and state["mask_token"].shape == (1, 1, E)
    assert state["decoder_pred.weight"].shape == (16 * 16 * 3, E)
    fresh = MaskedAutoencoder()
    assert torch.equal(state["pos_embed"], fresh.pos_embed.data)  # frozen: still MAE's sin-cos table
    full = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert set(full) == {"model", "mimdet_pretrain"}
    assert full["mimdet_pretrain"]["steps"] == 3
    assert all(type(v) in (str, int, float) for v in full["mimdet_pretrain"].values())


def test_pretraining_lowers_the_loss(images: Path, tmp_path: Path) -> None:
    result = pretrain(images, tmp_path / "mae.pth", img_size=96, steps=80, batch_size=8, seed=0)
    assert result.path.is_file() and result.steps == 80
    # Predicting each patch's mean scores ~1 on normalised pixels: below that, it learned image structure.
    # (Measured: 1.07 -> 0.80 at seed 0; seeds 1 and 2 reach 0.81 and 0.76.)
    assert result.last_loss < 0.85 * result.first_loss and result.last_loss < 0.9, result.summary()


def test_same_seed_same_weights(images: Path, tmp_path: Path) -> None:
    runs = [pretrain(images, tmp_path / f"{i}.pth", img_size=64, steps=2, batch_size=2) for i in range(2)]
    first, second = (read_mae_state(run.path) for run in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("num_decoders", [4, 8])
def test_checkpoint_fills_the_tiny_mimdet_encoder_and_decoder(checkpoint: Path, num_decoders: int) -> None:
    cfg = resolve_run("tiny_mimdet.py", [f"model.backbone.bottom_up.num_decoders={num_decoders}"]).cfg
    backbone: Any = build_model(cfg).backbone.bottom_up  # type: ignore[union-attr]
    report = load_mae_checkpoint(backbone, checkpoint)
    assert not [k for k in report.missing if k.startswith(("encoder.", "decoder."))]
    assert all(k.startswith("stem.") for k in report.missing)
    state = read_mae_state(checkpoint)
    last = num_decoders - 1
    assert torch.equal(
        backbone.decoder.blocks[last].attn.qkv.weight, state[f"decoder_blocks.{last}.attn.qkv.weight"]
    )
    assert torch.equal(backbone.decoder.mask_token.data, state["mask_token"])


def test_checkpoint_fills_the_tiny_benchmarking_vit(checkpoint: Path) -> None:
    backbone: Any = build_model(load_config("tiny_benchmarking.py")).backbone.bottom_up  # type: ignore[union-attr]
    report = load_mae_checkpoint(backbone, checkpoint)
    pretrained = [k for k in report.missing if k.startswith(("blocks.", "patch_embed", "pos_embed"))]
    # MAE has no relative position biases: Li et al. start them from zero.
    assert all(k.endswith((".attn.rel_pos_h", ".attn.rel_pos_w")) for k in pretrained), pretrained
    assert "patch_embed.proj.weight" in report.loaded and "pos_embed" in report.loaded


def test_masking_keeps_a_quarter_of_each_image_under_a_generator() -> None:
    x = torch.randn(3, 196, 8)  # (B, L, D)
    kept, mask, ids_restore = MaskedAutoencoder.random_masking(x, 0.75, torch.Generator().manual_seed(0))
    assert kept.shape == (3, 49, 8)
    assert torch.equal((mask == 0).sum(dim=1), torch.full((3,), 49))
    assert not torch.equal(mask[0], mask[1])  # per image
    for image in range(3):  # the kept tokens are the unmasked ones, in some order
        visible = x[image][mask[image] == 0]
        assert torch.equal(kept[image].sort(dim=0).values, visible.sort(dim=0).values)
    again = MaskedAutoencoder.random_masking(x, 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(again[1], mask) and torch.equal(again[2], ids_restore)


def test_loss_counts_only_masked_patches_against_normalised_pixels() -> None:
    torch.manual_seed(0)
    model = MaskedAutoencoder(img_size=64)
    imgs = torch.randn(2, 3, 64, 64)
    loss, pred, mask = model(imgs, generator=torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(model.forward_loss(imgs, pred, mask).item())
    visible = mask == 0
    changed = pred.detach().clone()
    changed[visible] = torch.randn_like(changed[visible]) * 100
    assert model.forward_loss(imgs, changed, mask).item() == pytest.approx(loss.item())
    changed[~visible] += 1
    assert model.forward_loss(imgs, changed, mask).item() != pytest.approx(loss.item())
    target = model.patchify(imgs)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert model.forward_loss(imgs, target, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_patchify_matches_the_patch_embedding_layout() -> None:
    imgs = torch.arange(2 * 3 * 32 * 48, dtype=torch.float32).reshape(2, 3, 32, 48)
    patches = MaskedAutoencoder.patchify(imgs)  # (B, L, P*P*3), patches in row-major grid order
    assert patches.shape == (2, 2 * 3, 16 * 16 * 3)
    assert torch.equal(patches[1, 4].reshape(16, 16, 3), imgs[1, :, 16:32, 16:32].permute(1, 2, 0))


def test_tiny_checkpoint_is_made_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = {"steps": 2, "batch_size": 2, "img_size": 64}
    path = ensure_tiny_mae_checkpoint(tmp_path, **params)
    assert path.parent == tmp_path and "steps2_bs2" in path.name and "img64" in path.name
    assert set(read_mae_state(path)) == mae_keys(DEPTH, DECODERS)
    mtime = path.stat().st_mtime_ns

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached checkpoint should have been reused")

    monkeypatch.setattr(pretrain_mae, "pretrain", no_training)
    assert ensure_tiny_mae_checkpoint(tmp_path, **params) == path
    assert path.stat().st_mtime_ns == mtime
    assert pretrain_mae.tiny_checkpoint_name(**params, seed=1) != path.name  # another setting, another file


def test_unknown_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unknown pre-training parameters"):
        ensure_tiny_mae_checkpoint(tmp_path, depht=4)


def test_cli_trains_and_ensures(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.pth"
    pretrain_mae.main(["--data", str(images), "--output", str(out), "--steps", "2", "--batch-size", "2"])
    assert out.is_file() and "2 steps" in capsys.readouterr().out
    monkeypatch.setenv("MIMDET_CACHE", str(tmp_path / "cache"))
    pretrain_mae.main(["--tiny", "--steps", "1", "--batch-size", "2"])
    printed = Path(capsys.readouterr().out.strip())
    assert printed.parent == tmp_path / "cache" and printed.is_file()


@pytest.mark.parametrize(
    ("flags", "code", "said"),
    [
        (["--tiny", "--steps", "0"], 2, "argument --steps: 0 is not a count (allowed: 1 or more)"),
        (["--tiny", "--lr", "nan"], 2, "argument --lr: nan (allowed: a finite number above 0)"),
        (["--tiny", "--embed-dim", "6"], 2, "argument --embed-dim: 6 (allowed: a multiple of 4)"),
        (
            ["--data", "{tmp}/none", "--output", "{tmp}/x.pth"],
            2,
            "no .jpg/.jpeg/.png images under {tmp}/none",
        ),
        (["--data", "{images}", "--output", "{tmp}/file/x.pth"], 4, "{tmp}/file is a file, not a folder"),
        (["--data", "{images}", "--output", "{tmp}"], 2, "argument --output: {tmp} is a folder, not a file"),
        (["--tiny"], 4, "{tmp}/file is a file, not a folder"),  # $MIMDET_CACHE
        (
            ["--tiny", "--seed", "99999999999999999999"],
            2,
            "argument --seed: 99999999999999999999 (allowed: a whole number from 0 to 2**32-1)",
        ),
        (["--tiny", "--seed", "-1"], 2, "argument --seed: -1 (allowed: a whole number from 0 to 2**32-1)"),
        (
            ["--data", "{images}", "--output", "{tmp}/pmdir/"],
            2,
            "argument --output: {tmp}/pmdir/ ends in /, a folder "
            "(allowed: a file's path, e.g. {tmp}/pmdir/mae.pth)",
        ),
    ],
    ids=[
        "steps-0",
        "lr-nan",
        "embed-dim-6",
        "no-images",
        "output-under-a-file",
        "output-a-folder",
        "cache",
        "seed-beyond-32-bits",
        "seed-negative",
        "output-a-folder-to-be",
    ],
)
def test_cli_bad_input_is_one_line_before_any_step(
    images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    code: int,
    said: str,
) -> None:
    """Before: a traceback, for some after the whole pre-training (a write under a file); ``--seed -1``
    pre-trained (mimdet.train refuses a negative seed as one no record repeats); ``--output DIR/`` of a
    folder not there wrote a file named DIR."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MIMDET_CACHE", str(tmp_path / "file"))
    with pytest.raises(SystemExit) as stopped:
        pretrain_mae.main([flag.format(tmp=tmp_path, images=images) for flag in flags])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert stopped.value.code == code
    assert error == "python -m mimdet.pretrain_mae: error: " + said.format(tmp=tmp_path)


def test_cli_an_image_that_cannot_be_read_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As mimdet.train names such an image. Before: PIL's UnidentifiedImageError traceback."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad.jpg").write_bytes(random.Random(0).randbytes(500))
    flags = ["--data", str(tmp_path / "data"), "--steps", "2", "--output", str(tmp_path / "pm.pth")]
    with pytest.raises(SystemExit) as stopped:
        pretrain_mae.main(flags)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"python -m mimdet.pretrain_mae: error: {tmp_path / 'data' / 'bad.jpg'}: an image that cannot be "
        "read (not in a format PIL can identify)"
    )
    assert not (tmp_path / "pm.pth").exists()


def test_cli_ctrl_c_is_one_line_and_exit_130(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a KeyboardInterrupt traceback."""

    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain_mae, "pretrain", interrupted)
    with pytest.raises(SystemExit) as stopped:
        pretrain_mae.main(["--data", str(images), "--output", str(tmp_path / "x.pth")])
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "python -m mimdet.pretrain_mae: interrupted\n"


STALLED_IMPORT = """
import runpy
from tests.stalling import stall_first_import

stall_first_import("torch")
runpy.run_module("mimdet.pretrain_mae", run_name="__main__", alter_sys=True)
"""


def test_cli_ctrl_c_while_torch_loads_is_the_same_line(tmp_path: Path) -> None:
    """Before: a KeyboardInterrupt traceback from the import of torch (seconds, before main runs)."""
    command = [sys.executable, "-c", STALLED_IMPORT, "--tiny"]
    stopped = interrupted_at_its_stall(command, MIMDET_CACHE=str(tmp_path), PYTHONWARNINGS="ignore")
    assert stopped == (130, "python -m mimdet.pretrain_mae: interrupted\n")
