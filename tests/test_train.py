"""One run end to end through ``python -m mimdet.train``: train, evaluate at other ratios, resume after
SIGKILL, and one clear line for bad input. Tiny config, a micro synthetic dataset, the CPU."""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from mimdet.pretrain_mae import pretrain
from mimdet.record.schema import RunRecord, read_record
from tests import REPO
from tests.micro import edited_tiny_config, micro_dataset, micro_overrides
from tests.stalling import interrupted_at_its_stall

RATIO = "model.backbone.bottom_up.test_sample_ratio"


def run_train(
    output: Path,
    *extra: str,
    data: Path,
    eval_only: bool = False,
    resume: bool = False,
    flags: tuple[str, ...] = (),
    config: str = "experiments/tiny_mimdet.py",
):
    command = [sys.executable, "-m", "mimdet.train", "--config-file", config]
    command += (
        ["--output", str(output)] + (["--eval-only"] if eval_only else []) + (["--resume"] if resume else [])
    )
    command += flags
    return subprocess.run(
        command + micro_overrides(data) + list(extra),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return micro_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, micro_data: Path) -> Path:
    output = tmp_path_factory.mktemp("runs") / "train"
    result = run_train(output, "train.max_iter=6", "train.checkpointer.period=3", data=micro_data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is_fx_tracing" not in result.stderr  # torch's note on what detectron2 asks it: not the user's
    return output


def test_training_writes_checkpoints_and_a_completed_record(trained: Path) -> None:
    record = read_record(trained / "record.json")
    assert record.status == "completed" and record.stage == "train" and record.error is None
    assert record.iterations == 6 and record.run_id == "train"
    assert {"model_0000002.pth", "model_0000005.pth", "model_final.pth"} <= {
        p.name for p in trained.iterdir()
    }
    assert record.variant.model == "mimdet" and record.variant.train_sample_ratio == 0.5
    assert record.variant.test_sample_ratio == 1.0 and record.variant.num_decoders == 4
    assert record.dataset.train == "micro_train" and record.dataset.test == "micro_val"
    assert record.metrics.bbox.AP is not None and 0.0 <= record.metrics.bbox.AP <= 100.0
    assert record.metrics.segm.AP is not None
    assert record.params.total == record.params.per_component["total"] > 100_000
    assert record.cost.sec_per_iter and record.cost.train_wall_time_s and record.cost.inference_images_per_s
    assert record.cost.peak_mem_kind == "cpu_peak_rss_delta" and record.cost.peak_mem_bytes_bs1 > 0
    assert record.cost.batch_shapes and record.cost.attention_backends == ["flash", "efficient", "math"]
    assert record.hardware.device == "cpu" and record.versions["torch"].startswith("2.")
    assert record.code_version


def evaluate(trained: Path, output: Path, ratio: str, data: Path) -> RunRecord:
    """``--eval-only`` of the trained micro run at inference ratio ``ratio``; its record."""
    checkpoint = f"train.init_checkpoint={trained / 'model_final.pth'}"
    result = run_train(output, checkpoint, f"{RATIO}={ratio}", data=data, eval_only=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return read_record(output / "record.json")


def test_evaluation_at_two_other_ratios_points_at_the_training(trained: Path, micro_data: Path) -> None:
    records = [evaluate(trained, trained.parent / f"eval_{r}", r, micro_data) for r in ("0.25", "0.5")]
    for record, ratio in zip(records, (0.25, 0.5), strict=True):
        assert record.stage == "eval" and record.status == "completed"
        assert record.parent_run_id == "train" and record.iterations == 6
        assert record.variant.test_sample_ratio == ratio and record.variant.train_sample_ratio == 0.5
        assert record.metrics.bbox.AP is not None and record.cost.train_wall_time_s is None


def test_evaluation_with_precise_batchnorm_says_so_in_its_log_and_record(
    trained: Path, micro_data: Path
) -> None:
    """``train.eval_precise_bn_iters=N``: BatchNorm re-estimated at the test ratio before evaluating
    (``mimdet.run.precise_bn``), a change of protocol the record keeps among its overrides."""
    output = trained.parent / "eval_precise_bn"
    checkpoint = f"train.init_checkpoint={trained / 'model_final.pth'}"
    setting = "train.eval_precise_bn_iters=2"
    result = run_train(output, checkpoint, f"{RATIO}=0.25", setting, data=micro_data, eval_only=True)
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_record(output / "record.json")
    assert record.status == "completed" and setting in record.overrides
    assert (
        "BatchNorm statistics at the test sample ratio 0.25, over 2 training batches"
        in (output / "log.txt").read_text()
    )


def test_evaluation_below_ratio_one_is_reproducible(trained: Path, micro_data: Path) -> None:
    aps = []
    for attempt in range(2):
        record = evaluate(trained, trained.parent / f"repeat_{attempt}", "0.25", micro_data)
        aps.append((record.metrics.bbox, record.metrics.segm))
    assert aps[0] == aps[1]


def test_sigkill_then_resume_ends_at_the_same_iteration(tmp_path: Path, micro_data: Path) -> None:
    output = tmp_path / "killed"
    command = [sys.executable, "-m", "mimdet.train", "--config-file", "experiments/tiny_mimdet.py"]
    command += ["--output", str(output), "train.max_iter=16", "train.checkpointer.period=4"]
    process = subprocess.Popen(
        command + micro_overrides(micro_data),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 300
    last = output / "last_checkpoint"  # detectron2 names the newest checkpoint here once it is complete
    while not (last.exists() and last.read_text().strip() == "model_0000007.pth"):
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (output / "record.json").exists() and not (output / "model_final.pth").exists()
    result = run_train(
        output, "train.max_iter=16", "train.checkpointer.period=4", data=micro_data, resume=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (output / "log.txt").read_text()
    resumed_at = [
        int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "Starting training from iteration" in line
    ]
    assert resumed_at[0] == 0 and resumed_at[-1] >= 8
    record = read_record(output / "record.json")
    assert record.status == "completed" and record.iterations == 16


STALLED_TRAIN = """
import runpy, sys
from tests.stalling import stall, stall_first_import

point = sys.argv.pop(1)
if point == "torch":
    stall_first_import(point)
elif point == "training":  # iteration 4 waits, after model_0000003.pth
    from detectron2.engine import SimpleTrainer
    run_step = SimpleTrainer.run_step
    def stall_at_4(self):
        if self.iter == 4:
            stall()
        run_step(self)
    SimpleTrainer.run_step = stall_at_4
else:  # the evaluation after the last iteration waits
    import detectron2.evaluation
    detectron2.evaluation.inference_on_dataset = stall
runpy.run_module("mimdet.train", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("point", ["torch", "training", "evaluation"])
def test_ctrl_c_is_one_line_and_the_run_resumes(point: str, tmp_path: Path, micro_data: Path) -> None:
    """``python -m mimdet.train`` stopped where it waits (torch loading, an iteration, the evaluation) and
    sent SIGINT: one line, exit 130, no record (interrupted, not failed); ``--resume`` ends the run from
    its last checkpoint. Before: a KeyboardInterrupt traceback; resumed after its training, the record
    counted one iteration more than it trained."""
    output, settings = tmp_path / "run", ["train.max_iter=6", "train.checkpointer.period=2"]
    config = ["--config-file", "experiments/tiny_mimdet.py", "--output", str(output)]
    command = [sys.executable, "-c", STALLED_TRAIN, point, *config, *micro_overrides(micro_data), *settings]
    stopped = interrupted_at_its_stall(command, REPO, PYTHONWARNINGS="ignore")
    assert stopped == (130, "mimdet.train: interrupted\n")
    assert not (output / "record.json").exists()
    if point == "torch":
        assert not output.exists()
        return
    last = {"training": "model_0000003.pth", "evaluation": "model_final.pth"}[point]
    assert (output / "last_checkpoint").read_text() == last
    result = run_train(output, *settings, data=micro_data, resume=True)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (output / "log.txt").read_text()
    assert f"Starting training from iteration {4 if point == 'training' else 6}" in log
    record = read_record(output / "record.json")
    assert record.status == "completed" and record.iterations == 6 and record.metrics.bbox.AP is not None


CTRL_C_MID_RECORD = """
import os, runpy, signal

replace = os.replace
def ctrl_c_then_replace(source, target):  # the record is in its temporary file, not yet in place
    if os.path.basename(target) == "record.json":
        os.kill(os.getpid(), signal.SIGINT)
    replace(source, target)
os.replace = ctrl_c_then_replace
runpy.run_module("mimdet.train", run_name="__main__", alter_sys=True)
"""


def test_a_ctrl_c_while_a_failed_record_is_written_leaves_the_failed_record(
    tmp_path: Path, micro_data: Path
) -> None:
    """A run that really fails (a dataset file missing) is sent SIGINT in the middle of writing its failed
    record: the record is written whole, then the Ctrl-C ends the process (one line, exit 130), and the run
    stays failed. Before: the write was cut off, no record, and the run read as interrupted: a plain
    ``sweep run`` started the failure again."""
    missing = tmp_path / "nowhere" / "instances.json"
    output = tmp_path / "bad"
    config = ["--config-file", "experiments/tiny_mimdet.py", "--output", str(output)]
    ghost = [f"dataset_paths={{ghost:[{missing},{tmp_path}]}}", "dataloader.test.dataset.names=ghost"]
    overrides = [*micro_overrides(micro_data), *ghost]
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_MID_RECORD, *config, *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 130, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1] == "mimdet.train: interrupted" and "Traceback" not in result.stderr
    record = read_record(output / "record.json")
    assert record.status == "failed" and str(missing) in (record.error or "")
    assert not list(output.glob(".record.json.*"))  # no temporary file left


def test_a_truncated_checkpoint_resumes_from_the_previous_one(trained: Path, micro_data: Path) -> None:
    """model_final.pth cut short on disk: one clear line, then the run goes on from model_0000005.pth."""
    output = trained.parent / "truncated"
    shutil.copytree(trained, output)
    final = output / "model_final.pth"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    result = run_train(
        output, "train.max_iter=9", "train.checkpointer.period=3", data=micro_data, resume=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (output / "log.txt").read_text()
    assert f"checkpoint {final} is unreadable" in log
    assert log.splitlines()[-1] and "Starting training from iteration 6" in log
    assert read_record(output / "record.json").iterations == 9


def test_a_checkpoint_of_another_model_size_is_refused_unless_a_partial_load_is_asked(
    trained: Path, micro_data: Path
) -> None:
    """Before: fvcore's "Skip loading parameter" warnings, exit 0 and a completed record of a model left
    mostly at its initialisation."""
    final = trained / "model_final.pth"
    smaller = ("model.backbone.bottom_up.embed_dim=32", "model.backbone.bottom_up.num_decoders=2")
    refused = trained.parent / "other_size"
    result = run_train(refused, f"train.init_checkpoint={final}", *smaller, data=micro_data, eval_only=True)
    line = _one_error_line(result)
    assert f"{final} does not fit the model: " in line and " tensors of another shape (backbone." in line
    assert " checkpoint tensors the model lacks (backbone.bottom_up.decoder.blocks.2." in line
    assert line.endswith("(to load only what fits: train.allow_partial_init=True)")
    record = read_record(refused / "record.json")
    assert record.status == "failed" and record.error == line.removeprefix("mimdet.train: error: ")

    partial = trained.parent / "partial"
    result = run_train(
        partial,
        f"train.init_checkpoint={final}",
        *smaller,
        "train.allow_partial_init=True",
        data=micro_data,
        eval_only=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_record(partial / "record.json").status == "completed"


def test_a_checkpoint_with_weights_that_are_not_finite_is_refused(
    trained: Path, micro_data: Path, tmp_path: Path
) -> None:
    """A checkpoint whose weights hold NaN (a training that diverged without detectron2 noticing) predicts
    nothing. Before: a completed record with box AP null, exit 0."""
    checkpoint = torch.load(trained / "model_final.pth", weights_only=True)
    checkpoint["model"]["roi_heads.box_predictor.cls_score.weight"][0, 0] = float("nan")
    torch.save(checkpoint, tmp_path / "nan.pth")
    for partial in ("False", "True"):
        output = tmp_path / f"eval-{partial}"
        flags = (f"train.init_checkpoint={tmp_path / 'nan.pth'}", f"train.allow_partial_init={partial}")
        line = _one_error_line(run_train(output, *flags, data=micro_data, eval_only=True))
        assert line.endswith(
            "nan.pth holds weights that are not finite numbers: 1 tensors with NaN or inf "
            "(roi_heads.box_predictor.cls_score.weight)"
        ), line
        assert read_record(output / "record.json").status == "failed"


def test_a_checkpoint_whose_iteration_no_record_can_hold_is_refused(
    trained: Path, micro_data: Path, tmp_path: Path
) -> None:
    """Before: exit 0 and a completed record of 10**30 iterations, which ``sweep collect -o x.parquet``
    then failed on (pyarrow's OverflowError); ``"abc"`` was train.py's ValueError traceback."""
    checkpoint = torch.load(trained / "model_final.pth", weights_only=True)
    checkpoint["iteration"] = 10**30
    torch.save(checkpoint, tmp_path / "odd.pth")
    output = tmp_path / "eval"
    line = _one_error_line(
        run_train(output, f"train.init_checkpoint={tmp_path / 'odd.pth'}", data=micro_data, eval_only=True)
    )
    assert line.endswith(
        "odd.pth: not a model checkpoint (its iteration is 1000000000000000000000000000000; allowed: an "
        "integer from 0 to 2**63-2, the last iteration trained)"
    ), line
    assert read_record(output / "record.json").status == "failed"


def test_mae_pretraining_still_loads_partially_by_design(tmp_path: Path, micro_data: Path) -> None:
    """The strict load is for run checkpoints; MAE weights fill the encoder and decoder and leave the
    rest (ConvStem, FPN, heads) at its initialisation, as the paper does."""
    mae = tmp_path / "mae_pretrain_tiny_full.pth"
    pretrain(micro_data, mae, steps=1, batch_size=2, decoder_depth=8)
    output = tmp_path / "from_mae"
    result = run_train(output, "train.max_iter=1", f"train.mae_checkpoint={mae}", data=micro_data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MAE initialisation: loaded " in (output / "log.txt").read_text()
    assert read_record(output / "record.json").status == "completed"


def test_a_bad_choice_in_a_config_file_is_one_line_before_the_run(tmp_path: Path, micro_data: Path) -> None:
    """Before: the backbone refused it, and writing the failed record raised RecordError (the value is
    not one the record allows): a traceback and no record. Now the value is refused before the run."""
    config = edited_tiny_config(tmp_path, "model.backbone.bottom_up.fpn_inputs = 'vitt'")
    result = run_train(tmp_path / "out", data=micro_data, config=str(config))
    expected = (
        f"{config}: model.backbone.bottom_up.fpn_inputs: 'vitt' is not allowed (allowed: 'hybrid', 'vit')"
    )
    assert _one_error_line(result) == f"mimdet.train: error: {expected}"
    assert not (tmp_path / "out").exists()


class _ImageOfWrongMode(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> None:
        raise ValueError("image has wrong mode")


def test_an_unknown_error_of_a_data_loader_worker_is_its_last_line_in_the_record() -> None:
    """torch re-raises a worker's error with the worker's whole traceback as its message; the failed
    record's error was all of it flattened into one ~2 KB line."""
    from mimdet.train import failure_line

    with pytest.raises(ValueError) as error:
        next(iter(torch.utils.data.DataLoader(_ImageOfWrongMode(), num_workers=1)))
    assert "Original Traceback" in str(error.value)  # torch's wrapping, as a run meets it
    assert failure_line(error.value) == "ValueError: image has wrong mode"
    assert failure_line(ValueError("a\nb")) == "ValueError: a b"  # the main process's own: as before


def test_a_model_that_refuses_its_settings_fails_in_one_line_with_its_own_error_in_the_record(
    tmp_path: Path, micro_data: Path
) -> None:
    """7x7 windows with the tiny config's training ratio 0.5: the backbone's own ValueError is the run's
    error, in its record and on stderr (before: a traceback)."""
    output = tmp_path / "window"
    result = run_train(output, "model.backbone.bottom_up.sampling=window", data=micro_data)
    line = _one_error_line(result)
    assert "sampling='window' uses every token and no decoder: set both ratios to 1.0" in line
    record = read_record(output / "record.json")
    assert record.status == "failed" and record.error == line.removeprefix("mimdet.train: error: ")


def _one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("mimdet.train: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (  # was: "IndexError: Target 3 is out of bounds" deep in the training
            "model.roi_heads.num_classes=2",
            "model.roi_heads.num_classes is 2: dataset 'micro_train' has 5 categories (allowed: 5 or more)",
        ),
        (  # was: "Too many open files" in a traceback
            "dataloader.train.total_batch_size=9",
            "dataloader.train.total_batch_size is 9: more than the 8 images of dataset 'micro_train' "
            "(allowed: 1 to 8)",
        ),
    ],
    ids=["num-classes", "batch-size"],
)
def test_a_run_that_does_not_fit_its_training_set_is_one_line_before_it_trains(
    tmp_path: Path, micro_data: Path, override: str, expected: str
) -> None:
    result = run_train(tmp_path / "run", "train.max_iter=2", override, data=micro_data)
    line = _one_error_line(result)
    assert line == f"mimdet.train: error: {expected}"
    record = read_record(tmp_path / "run" / "record.json")
    assert record.status == "failed" and record.error == expected
    assert not list((tmp_path / "run").glob("model_*.pth"))  # it never trained


def test_missing_dataset_file_is_one_line_naming_it(tmp_path: Path, micro_data: Path) -> None:
    missing = tmp_path / "nowhere" / "instances.json"
    result = run_train(
        tmp_path / "bad",
        f"dataset_paths={{ghost:[{missing},{tmp_path}]}}",
        "dataloader.test.dataset.names=ghost",
        data=micro_data,
    )
    assert str(missing) in _one_error_line(result)
    assert read_record(tmp_path / "bad" / "record.json").status == "failed"


def test_a_training_that_diverges_fails_in_one_line(tmp_path: Path, micro_data: Path) -> None:
    """detectron2 stops a training whose losses or boxes are no longer finite; before: its
    FloatingPointError's traceback (the record said it, in Python's words)."""
    result = run_train(tmp_path / "run", "optimizer.lr=1e8", "train.max_iter=20", data=micro_data)
    line = _one_error_line(result, code=1)
    assert line.startswith("mimdet.train: error: the training diverged: "), line
    record = read_record(tmp_path / "run" / "record.json")
    assert record.status == "failed" and record.error == line.removeprefix("mimdet.train: error: ")


def _garbage(image: Path) -> None:
    image.write_bytes(random.Random(image.name).randbytes(300))


def _truncated(image: Path) -> None:
    image.write_bytes(image.read_bytes()[:1200])


def _taller(image: Path) -> None:
    from PIL import Image

    with Image.open(image) as opened:
        opened.resize((opened.width, opened.height + 8)).save(image)


@pytest.mark.parametrize(
    ("split", "damage", "said"),
    [
        (
            "train",
            _garbage,
            "an image that cannot be read (not in a format PIL can identify) in dataset 'micro_train'",
        ),
        ("train", _truncated, "an image that cannot be read (image file is truncated"),
        ("train", _taller, "its height and width are not those its annotation gives (got ("),
        (
            "val",
            _garbage,
            "an image that cannot be read (not in a format PIL can identify) in dataset 'micro_val'",
        ),
    ],
    ids=["garbage", "truncated", "resized", "garbage-at-evaluation"],
)
def test_an_image_that_cannot_be_read_is_one_line_naming_it(
    tmp_path: Path, micro_data: Path, split: str, damage: Callable[[Path], None], said: str
) -> None:
    """Images are read as the loader asks for them, in data-loader workers (1 here): a damaged one failed
    the run mid-way in PIL's or detectron2's traceback, which for a truncated JPEG did not name the file."""
    data = Path(shutil.copytree(micro_data, tmp_path / "data"))
    images = sorted((data / split).iterdir())
    for image in images:
        damage(image)
    workers = ["dataloader.train.num_workers=1", "dataloader.test.num_workers=1", "train.max_iter=2"]
    result = run_train(tmp_path / "run", *workers, data=data)
    line = _one_error_line(result)
    assert said in line and any(line.startswith(f"mimdet.train: error: {image}: ") for image in images), line
    record = read_record(tmp_path / "run" / "record.json")
    assert record.status == "failed" and record.error == line.removeprefix("mimdet.train: error: ")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.max_itr=5", "unknown key 'max_itr' in train (did you mean: max_iter?)"),
        ("train.max_iter=five", "train.max_iter is an int"),
        ("train.max_iter=-5", "train.max_iter is -5: a run trains at least 1 iteration"),  # was: completed
        ("train.eval_precise_bn_iters=-1", "train.eval_precise_bn_iters is -1: 0 or more (training batches"),
        ("train.epochs=0", "train.max_iter: epochs and batch size must be positive, got 0 and"),
        ("train.log_period=0", "train.log_period is 0: 1 or more"),  # was: a ZeroDivisionError traceback
        (  # was: an OverflowError traceback in detectron2's time estimate, after checkpoints were written
            "train.max_iter=99999999999999999999999",
            "train.max_iter is 99999999999999999999999: at most 2**31 - 1",
        ),
        (  # was: a traceback from each data-loader worker, PIL's "image has wrong mode"
            "dataloader.train.mapper.image_format=XYZ",
            "dataloader.train.mapper.image_format is 'XYZ': a format detectron2 reads images in",
        ),
        ("model.backbone.bottom_up.num_decoder=2", "did you mean: num_decoders"),
        ("model.backbone.bottom_up.sampling=randm", "'randm' is not allowed for sampling (allowed: "),
        ("train.amp.enabled=True", "train.amp.enabled=True needs CUDA (detectron2's AMPTrainer)"),
        (
            "train.device=foo",
            "train.device=foo is not a device (allowed: cpu, cuda, cuda:N)",
        ),  # was: a traceback
        pytest.param(
            "train.device=cuda",
            "train.device=cuda but no CUDA device is visible",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_bad_override_is_one_line(tmp_path: Path, micro_data: Path, override: str, expected: str) -> None:
    result = run_train(tmp_path / "bad", override, data=micro_data)
    assert expected in _one_error_line(result)
    assert not (tmp_path / "bad").exists()  # nothing started


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has the GPUs --num-gpus 2 asks for")
def test_more_gpus_than_the_machine_has_is_one_line(tmp_path: Path, micro_data: Path) -> None:
    result = run_train(tmp_path / "bad", data=micro_data, flags=("--num-gpus", "2"))
    assert "--num-gpus 2: this machine has" in _one_error_line(result)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--num-gpus", "0"), "--num-gpus 0: a run has 1 process or more"),
        (("--num-gpus", "-1"), "--num-gpus -1: a run has 1 process or more"),
        (("--num-machines", "0"), "--num-machines 0 --machine-rank 0: 1 machine or more"),
        (("--machine-rank", "3"), "--num-machines 1 --machine-rank 3: 1 machine or more, and a rank from 0"),
    ],
)
def test_a_process_count_or_rank_that_is_none_is_one_line(
    tmp_path: Path, micro_data: Path, flags: tuple[str, ...], expected: str
) -> None:
    """Before, each ran a training in this process as if it had been ``--num-gpus 1``."""
    result = run_train(tmp_path / "bad", "train.max_iter=2", data=micro_data, flags=flags)
    assert expected in _one_error_line(result)
    assert not (tmp_path / "bad").exists()


# --- bad input and a hostile file system: one line, an exit code per kind, nothing half-written ----------

EXIT_STORAGE = 4  # mimdet.train's exit code when the file system refuses a write


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("import math\nmodel = dict(\n", ":2: syntax error: '(' was never closed"),
        ("import math\n\nmodel = undefined_name\n", ":3: NameError: name 'undefined_name' is not defined"),
    ],
)
def test_a_config_file_that_does_not_load_is_one_line(
    tmp_path: Path, micro_data: Path, text: str, expected: str
) -> None:
    config = tmp_path / "broken.py"
    config.write_text(text)
    result = run_train(tmp_path / "out", data=micro_data, config=str(config))
    assert f"{config}{expected}" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "experiments/common/tiny.py",
            "not a run config, it sets no model, dataloader, optimizer, lr_multiplier",
        ),
        (
            "sweeps/tiny/table2.yaml",
            "not a run config, it sets no model, dataloader, optimizer, lr_multiplier (",
        ),
        ("README.md", "not a config file (allowed: Python .py, YAML .yaml or .yml)"),
    ],
    ids=["a-helper-module", "a-sweep-spec", "markdown"],
)
def test_a_file_that_is_not_a_run_config_is_one_line(
    tmp_path: Path, micro_data: Path, config: str, expected: str
) -> None:
    """Before: a traceback on the first key a run reads, or (``README.md``) a line naming detectron2's
    loader as if it were the file."""
    result = run_train(tmp_path / "out", data=micro_data, config=config)
    assert f"mimdet.train: error: {config}: {expected}" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make", [os.mkfifo, os.mkdir], ids=["fifo", "folder"])
def test_a_config_path_that_is_not_a_file_is_the_only_line_on_stderr(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    """Before: a FIFO was "config file not found"; and every run began with detectron2's FutureWarnings
    about torch.jit, four lines before anything of the run's own (here: nothing else at all)."""
    config = tmp_path / "config.py"
    make(config)
    result = subprocess.run(
        [sys.executable, "-m", "mimdet.train", "--config-file", str(config), "--output", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"},
    )
    assert result.returncode == 2
    assert (
        result.stderr == f"mimdet.train: error: {config}: not a plain file (a folder, a FIFO or a device)\n"
    )


def _saved(content: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (random.Random(0).randbytes(4096), "not a readable torch checkpoint"),
        (b"", "empty file (0 bytes), not a checkpoint"),
        (None, "no such checkpoint file"),
        (_saved([1, 2, 3]), "not a model checkpoint (no state dict of tensors in it)"),
        (_saved({"model": {"weight": "text"}}), "not a model checkpoint (no state dict of tensors in it)"),
    ],
    ids=["random-bytes", "empty", "missing", "a-list", "strings"],
)
def test_an_unreadable_checkpoint_is_one_line_and_a_failed_record(
    tmp_path: Path, micro_data: Path, content: bytes | None, expected: str
) -> None:
    """Never torch's hint to load it with ``weights_only=False`` (that would run code from the file)."""
    checkpoint = tmp_path / "model_final.pth"
    if content is not None:
        checkpoint.write_bytes(content)
    output = tmp_path / "eval"
    result = run_train(output, f"train.init_checkpoint={checkpoint}", data=micro_data, eval_only=True)
    assert f"{checkpoint}: {expected}" in _one_error_line(result)
    assert "weights_only" not in result.stderr + result.stdout + (output / "log.txt").read_text()
    record = read_record(output / "record.json")
    assert record.status == "failed" and record.error.startswith(f"{checkpoint}: {expected}")


@pytest.mark.parametrize(
    ("output", "expected"),
    [("file", "is a file, not a folder"), ("file/run", "is a file, not a folder")],
)
def test_an_output_folder_that_is_a_file_is_one_line(
    tmp_path: Path, micro_data: Path, output: str, expected: str
) -> None:
    (tmp_path / "file").write_text("not a folder")
    line = _one_error_line(run_train(tmp_path / output, data=micro_data))
    assert f"{tmp_path / 'file'} {expected}" in line
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("", "--output is empty (allowed: the run's folder, e.g. runs/tiny; here: --output .)"),
        ("/", "--output /: the file system's root is no run's folder"),
    ],
)
def test_an_output_that_is_empty_or_the_root_is_one_line_and_writes_nothing(
    tmp_path: Path, micro_data: Path, output: str, expected: str
) -> None:
    """``--output "$UNSET"``: before, the run was written into the current folder (the repository's root
    here), ``--output /`` into the root with an empty run id."""
    command = [
        sys.executable,
        "-m",
        "mimdet.train",
        "--config-file",
        str(REPO / "experiments" / "tiny_mimdet.py"),
    ]
    result = subprocess.run(
        [*command, "--output", output, *micro_overrides(micro_data)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)},
    )
    assert _one_error_line(result) == f"mimdet.train: error: {expected}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "make", "kind"),
    [
        ("log.txt", os.mkfifo, "a FIFO"),
        ("metrics.json", os.mkfifo, "a FIFO"),
        ("config.yaml", lambda path: path.symlink_to(path.parent.parent / "precious.yaml"), "a link"),
        ("last_checkpoint", os.mkfifo, "a FIFO"),
        ("last_checkpoint", lambda path: path.symlink_to("/dev/zero"), "a link"),
    ],
    ids=["log-fifo", "metrics-fifo", "config-link", "tag-fifo", "tag-dev-zero"],
)
def test_a_run_file_that_is_not_a_plain_file_is_one_line_before_the_run(
    tmp_path: Path, micro_data: Path, name: str, make: Callable[[Path], None], kind: str
) -> None:
    """``--resume`` into a folder where a file the run writes or reads again is not one. Before: a FIFO
    hung the run (its first open), a ``config.yaml`` link had its target rewritten, a ``last_checkpoint``
    link to ``/dev/zero`` was read until the OOM killer ended the run."""
    output, precious = tmp_path / "run", tmp_path / "precious.yaml"
    output.mkdir()
    precious.write_text("kept\n")
    make(output / name)
    line = _one_error_line(run_train(output, data=micro_data, resume=True))
    problem = f"{name} is {kind}, not a file (the run writes it; remove it)"
    assert line == f"mimdet.train: error: --output {output}: {problem}"
    assert precious.read_text() == "kept\n" and sorted(p.name for p in output.iterdir()) == [name]


def test_a_last_checkpoint_naming_another_runs_file_is_not_resumed_from(
    trained: Path, micro_data: Path
) -> None:
    """``last_checkpoint`` names ``../train/model_final.pth``: one line, and the run goes on from its own
    newest checkpoint. Before: it went on silently from the other run's weights and iteration."""
    output = trained.parent / "foreign_tag"
    shutil.copytree(trained, output)
    for name in ("record.json", "model_final.pth", "model_0000005.pth"):
        (output / name).unlink()
    (output / "last_checkpoint").write_text("../train/model_final.pth")
    result = run_train(
        output, "train.max_iter=9", "train.checkpointer.period=3", data=micro_data, resume=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (output / "log.txt").read_text()
    tag = output / "last_checkpoint"
    assert f"{tag} names '../train/model_final.pth', not a checkpoint file of this folder" in log
    assert "Starting training from iteration 3" in log and "Starting training from iteration 6" not in log
    assert read_record(output / "record.json").iterations == 9


@pytest.mark.parametrize("eval_only", [False, True], ids=["training", "evaluation"])
def test_a_run_into_a_trainings_folder_without_resume_is_one_line_and_overwrites_nothing(
    trained: Path, micro_data: Path, eval_only: bool
) -> None:
    """Before: a training without --resume started from scratch over the folder's checkpoints (a kill
    midway left a mix of two runs' files), and an evaluation replaced the training's record with its own."""
    kept = {path.name: path.read_bytes() for path in trained.iterdir() if path.is_file()}
    checkpoint = f"train.init_checkpoint={trained / 'model_final.pth'}"
    line = _one_error_line(
        run_train(trained, "train.max_iter=2", checkpoint, data=micro_data, eval_only=eval_only)
    )
    assert line == (
        f"mimdet.train: error: --output {trained} holds a training's checkpoints (last_checkpoint): "
        "a run there without --resume would overwrite them and its record (--resume goes on from them; "
        "a fresh training or an evaluation needs a folder of its own)"
    )
    assert {path.name: path.read_bytes() for path in trained.iterdir() if path.is_file()} == kept


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted on ``folder`` (needs root, as ``make test`` runs); the test skips elsewhere."""
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
    mounted = subprocess.run(mount, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("inside", ["", "run"], ids=["the-mount-itself", "a-new-folder-in-it"])
def test_an_output_folder_on_a_read_only_file_system_is_one_line(
    tmp_path: Path, micro_data: Path, inside: str
) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        line = _one_error_line(run_train(mount / inside, data=micro_data), code=EXIT_STORAGE)
    assert line.startswith("mimdet.train: error: read-only file system") and str(mount) in line


def test_a_full_disk_fails_the_run_in_one_line_and_leaves_no_half_written_checkpoint(
    tmp_path: Path, micro_data: Path
) -> None:
    """A real full disk: a 1 MiB tmpfs holds the run's logs and its record but not a checkpoint (several MiB).

    The record says why in one line (what ``sweep status`` shows), and the disk holds no checkpoint, no
    ``last_checkpoint`` and no temporary file that a resume or a reader could take for a result.
    """
    with tmpfs(tmp_path / "full", "size=1m") as mount:
        result = run_train(mount / "run", "train.max_iter=4", "train.checkpointer.period=2", data=micro_data)
        line = _one_error_line(result, code=EXIT_STORAGE)
        record = read_record(mount / "run" / "record.json")
        left = sorted(p.name for p in (mount / "run").iterdir())
    assert line.startswith("mimdet.train: error: no space left on device (writing ")
    assert record.status == "failed" and record.error == line.removeprefix("mimdet.train: error: ")
    assert not [name for name in left if name.endswith((".pth", ".tmp")) or name == "last_checkpoint"], left
