"""Loading official-format MAE checkpoints: exact key sets, resized tables, clear errors, round trip; and
the run's own checkpoints (``RunCheckpointer``): strict loads, atomic saves.

The tests write a tiny checkpoint in MAE's exact format themselves (no downloads): the key names and
shapes of MAE's ``models_mae.py`` at width D=32 (decoder E=16, 8 decoder blocks, 14x14 grid).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from mimdet.modeling import BenchmarkingViT, MIMDetBackbone
from mimdet.modeling.checkpoint import (
    CheckpointError,
    CheckpointUnreadable,
    convert_mae_state,
    load_mae_checkpoint,
)
from mimdet.modeling.pos_embed import sincos_2d_table
from mimdet.run.checkpointer import RunCheckpointer

D, E, DEPTH, DECODERS = 32, 16, 4, 8
BLOCK_KEYS = [
    f"{m}.{p}"
    for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
    for p in ("weight", "bias")
]


def _block(width: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shapes = {
        "norm1.weight": (width,),
        "norm1.bias": (width,),
        "attn.qkv.weight": (3 * width, width),
        "attn.qkv.bias": (3 * width,),
        "attn.proj.weight": (width, width),
        "attn.proj.bias": (width,),
        "norm2.weight": (width,),
        "norm2.bias": (width,),
        "mlp.fc1.weight": (4 * width, width),
        "mlp.fc1.bias": (4 * width,),
        "mlp.fc2.weight": (width, 4 * width),
        "mlp.fc2.bias": (width,),
    }
    assert list(shapes) == BLOCK_KEYS
    return {k: torch.randn(s, generator=generator) for k, s in shapes.items()}


def mae_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with MAE's keys and shapes (``MaskedAutoencoderViT`` at tiny widths)."""
    g = torch.Generator().manual_seed(seed)
    state = {
        "cls_token": torch.randn(1, 1, D, generator=g),
        "pos_embed": sincos_2d_table(D, 14)[None],
        "patch_embed.proj.weight": torch.randn(D, 3, 16, 16, generator=g),
        "patch_embed.proj.bias": torch.randn(D, generator=g),
    }
    for i in range(DEPTH):
        state.update({f"blocks.{i}.{k}": v for k, v in _block(D, g).items()})
    state.update({"norm.weight": torch.randn(D, generator=g), "norm.bias": torch.randn(D, generator=g)})
    state.update(
        {
            "mask_token": torch.randn(1, 1, E, generator=g),
            "decoder_embed.weight": torch.randn(E, D, generator=g),
            "decoder_embed.bias": torch.randn(E, generator=g),
            "decoder_pos_embed": sincos_2d_table(E, 14)[None],
        }
    )
    for i in range(DECODERS):
        state.update({f"decoder_blocks.{i}.{k}": v for k, v in _block(E, g).items()})
    state.update(
        {
            "decoder_norm.weight": torch.randn(E, generator=g),
            "decoder_norm.bias": torch.randn(E, generator=g),
            "decoder_pred.weight": torch.randn(16 * 16 * 3, E, generator=g),
            "decoder_pred.bias": torch.randn(16 * 16 * 3, generator=g),
        }
    )
    return state


def mimdet(num_decoders: int = 2, pos_grid: int = 6, **kwargs) -> MIMDetBackbone:
    return MIMDetBackbone(
        embed_dim=D,
        depth=DEPTH,
        num_heads=2,
        pos_grid=pos_grid,
        decoder_dim=E,
        decoder_heads=2,
        num_decoders=num_decoders,
        drop_path_rate=0.0,
        norm="BN",
        **kwargs,
    )


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "mae_pretrain_tiny_full.pth"
    torch.save({"model": mae_state()}, path)
    return path


def test_conversion_keeps_exactly_the_encoder_and_the_first_n_decoders() -> None:
    backbone = mimdet(num_decoders=2)
    source = mae_state()
    before = {k: v.clone() for k, v in source.items()}
    converted, dropped = convert_mae_state(source, backbone.state_dict(), MIMDetBackbone.MAE_KEY_MAP)
    assert all(torch.equal(before[k], source[k]) for k in source)  # a pure function: input untouched
    decoder_blocks_dropped = {f"decoder_blocks.{i}.{k}" for i in range(2, DECODERS) for k in BLOCK_KEYS}
    assert (
        set(dropped)
        == {
            "cls_token",
            "patch_embed.proj.weight",
            "patch_embed.proj.bias",
            "decoder_pred.weight",
            "decoder_pred.bias",
        }
        | decoder_blocks_dropped
    )
    missing = set(backbone.state_dict()) - set(converted)
    assert all(k.startswith("stem.") for k in missing)
    assert torch.equal(converted["encoder.blocks.3.attn.qkv.weight"], source["blocks.3.attn.qkv.weight"])
    assert torch.equal(converted["decoder.blocks.1.mlp.fc2.bias"], source["decoder_blocks.1.mlp.fc2.bias"])
    assert converted["encoder.pos_embed"].shape == (1, 1 + 36, D)
    assert converted["decoder.pos_embed"].shape == (1, 1 + 36, E)


def test_resized_sincos_table_stays_close_to_a_fresh_one() -> None:
    backbone = mimdet(pos_grid=14)
    converted, _ = convert_mae_state(mae_state(), backbone.state_dict(), MIMDetBackbone.MAE_KEY_MAP)
    assert torch.allclose(converted["encoder.pos_embed"], backbone.encoder.pos_embed.data)


def test_load_reports_loaded_missing_and_unexpected(
    checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backbone = mimdet(num_decoders=4)
    with caplog.at_level("INFO"):
        report = load_mae_checkpoint(backbone, checkpoint)
    assert not [k for k in report.missing if k.startswith(("encoder.", "decoder."))]
    assert len(report.loaded) == DEPTH * 12 + 3 + 4 + 4 * 12 + 2
    assert "decoder_pred.weight" in report.unexpected and "cls_token" in report.unexpected
    assert "loaded" in caplog.text and "missing" in caplog.text and "unexpected" in caplog.text
    assert torch.equal(backbone.decoder.mask_token.data, mae_state()["mask_token"])


def test_benchmarking_keeps_the_patchify_stem(checkpoint: Path) -> None:
    backbone = BenchmarkingViT(
        img_size=64, embed_dim=D, depth=DEPTH, num_heads=2, window_size=2, global_every=2
    )
    report = load_mae_checkpoint(backbone, checkpoint)
    assert "patch_embed.proj.weight" in report.loaded and "pos_embed" in report.loaded
    assert "norm.weight" in report.unexpected and "mask_token" in report.unexpected
    assert backbone.pos_embed.shape == (1, 1 + 16, D)


def test_benchmarking_without_a_class_slot_drops_maes(checkpoint: Path) -> None:
    """The reference flavor's position table has no class row: MAE's is dropped, its grid resized."""
    backbone = BenchmarkingViT(
        img_size=64, embed_dim=D, depth=DEPTH, num_heads=2, window_size=2, global_every=2, pos_cls_slot=False
    )
    report = load_mae_checkpoint(backbone, checkpoint)
    assert "pos_embed" in report.loaded and backbone.pos_embed.shape == (1, 16, D)
    with_slot = convert_mae_state(
        mae_state(), {"pos_embed": torch.zeros(1, 17, D)}, (("pos_embed", "pos_embed"),)
    )
    assert torch.equal(backbone.pos_embed.data, with_slot[0]["pos_embed"][:, 1:])


def test_a_sincos_position_table_is_not_replaced_by_maes(checkpoint: Path) -> None:
    """pos_init='sincos' (the reference's start) keeps its own table over MAE's; the blocks still load."""
    backbone = BenchmarkingViT(
        img_size=64, embed_dim=D, depth=DEPTH, num_heads=2, window_size=2, global_every=2, pos_init="sincos"
    )
    before = backbone.pos_embed.detach().clone()
    report = load_mae_checkpoint(backbone, checkpoint)
    assert "pos_embed" in report.missing and "blocks.0.attn.qkv.weight" in report.loaded
    assert torch.equal(backbone.pos_embed.data, before)
    assert (
        "pos_embed"
        in load_mae_checkpoint(
            BenchmarkingViT(
                img_size=64, embed_dim=D, depth=DEPTH, num_heads=2, window_size=2, global_every=2
            ),
            checkpoint,
        ).loaded
    )  # the class's own map: unchanged


def test_round_trip_through_a_saved_backbone(checkpoint: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = mimdet(num_decoders=2, train_sample_ratio=0.5).eval()
    load_mae_checkpoint(backbone, checkpoint)
    torch.save(backbone.state_dict(), tmp_path / "backbone.pth")
    clone = mimdet(num_decoders=2, train_sample_ratio=0.5).eval()
    clone.load_state_dict(torch.load(tmp_path / "backbone.pth"))
    images = torch.randn(1, 3, 64, 96)
    assert all(
        torch.equal(a, b) for a, b in zip(backbone(images).values(), clone(images).values(), strict=True)
    )


def test_wrong_width_names_the_key(checkpoint: Path) -> None:
    backbone = MIMDetBackbone(
        embed_dim=48, depth=DEPTH, num_heads=2, pos_grid=6, decoder_dim=E, decoder_heads=2
    )
    with pytest.raises(
        CheckpointError,
        match=r"pos_embed: checkpoint shape \(1, 197, 32\) does not fit encoder\.pos_embed \(1, 37, 48\)",
    ):
        load_mae_checkpoint(backbone, checkpoint)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"state_dict": {}}, "not an MAE checkpoint"),
        ({"model": {"blocks.0.norm1.weight": "not a tensor"}}, "not an MAE checkpoint"),
        ([1, 2, 3], "not an MAE checkpoint"),
    ],
)
def test_foreign_checkpoints_are_one_clear_error(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "foreign.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as error:
        load_mae_checkpoint(mimdet(), path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_mae_checkpoint(mimdet(), tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_mae_checkpoint(mimdet(), garbage)


def test_a_checkpoint_that_is_a_folder_or_a_fifo_is_not_called_missing(tmp_path: Path) -> None:
    """Before: ``no such checkpoint file`` of a path where a folder or a FIFO stands."""
    os.mkfifo(tmp_path / "fifo.pth")
    (tmp_path / "folder.pth").mkdir()
    for name in ("fifo.pth", "folder.pth"):
        path = tmp_path / name
        with pytest.raises(CheckpointUnreadable, match=f"^{path}: not a plain file"):
            RunCheckpointer(mimdet(), str(tmp_path)).load(str(path))
        with pytest.raises(CheckpointUnreadable, match=f"^{path}: not a plain file"):
            load_mae_checkpoint(mimdet(), path)


def test_a_run_checkpoint_of_another_model_is_refused_naming_what_did_not_fit(tmp_path: Path) -> None:
    """Two decoders saved, one loaded: the second decoder block is left over; other widths: shapes."""
    RunCheckpointer(mimdet(num_decoders=2), str(tmp_path)).save("two_decoders")
    saved = str(tmp_path / "two_decoders.pth")
    with pytest.raises(CheckpointError) as error:
        RunCheckpointer(mimdet(num_decoders=1)).load(saved)
    message = str(error.value)
    assert message.startswith(f"{saved} does not fit the model: 12 checkpoint tensors the model lacks (")
    assert "decoder.blocks.1.norm1.weight" in message and "train.allow_partial_init=True" in message
    assert "\n" not in message

    other_width = MIMDetBackbone(
        embed_dim=16,
        depth=DEPTH,
        num_heads=2,
        pos_grid=6,
        decoder_dim=E,
        decoder_heads=2,
        num_decoders=2,
        drop_path_rate=0.0,
        norm="BN",
    )
    with pytest.raises(
        CheckpointError,
        match=r"66 tensors of another shape \(stem.stages.0.0.weight: \(4, 3, 3, 3\) in the checkpoint, "
        r"\(2, 3, 3, 3\) here; ",
    ):
        RunCheckpointer(other_width).load(saved)


def _int_key(checkpoint: dict) -> None:
    checkpoint["model"][5] = torch.zeros(1)


def _weights_cast_to_int64(checkpoint: dict) -> None:
    checkpoint["model"] = {
        key: value.long() if value.is_floating_point() else value
        for key, value in checkpoint["model"].items()
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_int_key, r"not a model checkpoint \(1 keys of its state dict are not tensor names \(first: 5\)\)"),
        (
            lambda checkpoint: checkpoint.update(iteration="abc"),
            r"not a model checkpoint \(its iteration is 'abc'; allowed: an integer from 0 to 2\*\*63-2",
        ),
        (
            lambda checkpoint: checkpoint.update(iteration=10**30),
            r"not a model checkpoint \(its iteration is 1000000000000000000000000000000; allowed: ",
        ),
        (
            lambda checkpoint: checkpoint.update(iteration=-3),
            r"not a model checkpoint \(its iteration is -3; allowed: ",
        ),
        (
            _weights_cast_to_int64,
            r"holds 95 tensors that are not floating point where the model's are \(stem.stages.0.0.weight: "
            r"torch.int64 in the checkpoint, torch.float32 here; .*\): weights cast to integers lost",
        ),
    ],
    ids=["int key", "iteration text", "iteration 10**30", "negative iteration", "weights cast to int64"],
)
def test_a_run_checkpoint_with_odd_contents_is_one_line(tmp_path: Path, change, problem: str) -> None:
    """Before: a TypeError or ValueError traceback, a record of 10**30 iterations (which parquet could not
    hold), or integer weights loaded into the model without a word (every fraction truncated)."""
    RunCheckpointer(mimdet(), str(tmp_path)).save("model_final", iteration=5)
    checkpoint = torch.load(tmp_path / "model_final.pth", weights_only=True)
    change(checkpoint)
    odd = tmp_path / "odd.pth"
    torch.save(checkpoint, odd)
    for allow_partial in (False, True):
        with pytest.raises(CheckpointError, match=f"^{odd}:? {problem}") as error:
            RunCheckpointer(mimdet(), allow_partial=allow_partial).load(str(odd))
        assert "\n" not in str(error.value)
    assert RunCheckpointer(mimdet()).load(str(tmp_path / "model_final.pth"))["iteration"] == 5


def test_a_partial_load_is_what_the_user_asks_for(tmp_path: Path) -> None:
    source = mimdet(num_decoders=2)
    RunCheckpointer(source, str(tmp_path)).save("two_decoders")
    target = mimdet(num_decoders=1)
    RunCheckpointer(target, allow_partial=True).load(str(tmp_path / "two_decoders.pth"))
    assert torch.equal(target.decoder.blocks[0].norm1.weight, source.decoder.blocks[0].norm1.weight)
    same = mimdet(num_decoders=2)
    RunCheckpointer(same).load(str(tmp_path / "two_decoders.pth"))  # a checkpoint that fits: no error


def test_a_save_that_fails_leaves_the_previous_checkpoint_and_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full disk simulated at the real write site (``os.fdopen``'s file ``write``) for machines where a
    tmpfs cannot be mounted (``test_train.py`` fills a real one): the error names the checkpoint, and
    neither a partial file nor a moved ``last_checkpoint`` is left."""
    checkpointer = RunCheckpointer(mimdet(), str(tmp_path))
    checkpointer.save("model_0000001")
    real_fdopen = os.fdopen

    def full_disk(fd: int, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)

        def write(data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        handle.write = write  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(OSError) as error:
        checkpointer.save("model_0000002")
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path / "model_0000002.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
