"""One run: train a detector and evaluate it, or evaluate a trained checkpoint at another ratio.

    python -m mimdet.train --config-file experiments/tiny_mimdet.py --output runs/tiny
    python -m mimdet.train --config-file experiments/tiny_mimdet.py --eval-only --output runs/tiny-r025 \\
        train.init_checkpoint=runs/tiny/model_final.pth model.backbone.bottom_up.test_sample_ratio=0.25

The flags and the ``key=value`` override syntax are those of detectron2's ``lazyconfig_train_net.py``;
overrides are checked first (unknown keys and wrong types are errors). Every run ends by writing
``record.json`` in its output folder (``completed`` or ``failed``, with the error): ``mimdet.record.schema``.

Failures a user can act on are one line on stderr, ``mimdet.train: error: ...``, the same line in the
record, and no traceback (``known_failure`` sorts them); the exit code says which kind: 2 for bad input
(flags, overrides, a config file that does not load, settings the model refuses, a dataset or a
checkpoint that cannot be used), 4 when the file system refuses a write (full, read-only, no
permission), 1 for a training that diverged (detectron2's checks of the losses and boxes). Anything else
is a bug: its traceback is kept. A Ctrl-C is one line, ``mimdet.train:
interrupted``, exit 130, and no record: the run was cut off, not failed, and ``--resume`` goes on from
its last checkpoint. One that comes while the record is written waits until it is on disk: a run that
failed stays failed.

Config keys read: ``model``, ``dataloader.{train,test,evaluator}``, ``optimizer``, ``lr_multiplier``,
``train.{output_dir, init_checkpoint, mae_checkpoint, max_iter, amp.enabled, ddp, checkpointer,
log_period, device, seed, final_eval, eval_precise_bn_iters, allow_partial_init}``, ``dataset_paths``.
"""

from __future__ import annotations

import sys

from mimdet.run.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_STORAGE, interrupted


def _interrupted() -> int:
    """A Ctrl-C, while the modules load or the run works: one line, no traceback, no record, so the run
    stays resumable (``--resume`` goes on from its last checkpoint) and ``sweep`` reads it interrupted."""
    return interrupted("mimdet.train")


try:  # a Ctrl-C while torch and detectron2 load (seconds) is the same line as once main runs
    import argparse
    import logging
    import time
    from pathlib import Path

    from mimdet.run.environment import quiet_third_party_warnings

    if __name__ == "__main__":  # detectron2 warns of torch's deprecations as it loads, a run's first lines
        quiet_third_party_warnings()
    import torch
    from detectron2.config import instantiate
    from detectron2.engine import (
        AMPTrainer,
        SimpleTrainer,
        create_ddp_model,
        default_argument_parser,
        default_setup,
        hooks,
        launch,
    )
    from detectron2.evaluation import inference_on_dataset
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger
    from omegaconf import DictConfig, OmegaConf
    from torch import nn

    from mimdet.data.loader import build_loader, worker_error_line, worker_exception_line
    from mimdet.data.registry import (
        DatasetError,
        DatasetSize,
        ensure_registered,
        register_coco_path,
        register_synthetic,
    )
    from mimdet.modeling.checkpoint import CheckpointError, CheckpointUnreadable, load_mae_checkpoint
    from mimdet.modeling.param_count import count_parameters
    from mimdet.pretrain_mae import ensure_tiny_mae_checkpoint
    from mimdet.record.atomic import file_in_the_way, not_a_plain_file, storage_problem
    from mimdet.record.from_run import RunOutcome, build_record, read_parent_run_id
    from mimdet.record.schema import RunRecord, write_record
    from mimdet.run.checkpointer import RunCheckpointer
    from mimdet.run.config import ConfigFileError, ModelConfigError, build_model
    from mimdet.run.cost import CostHook, TimedModel
    from mimdet.run.overrides import OverrideError
    from mimdet.run.precise_bn import recalibrate_batchnorm
    from mimdet.run.resolve import resolve_run
    from mimdet.run.sigint import sigint_deferred
    from mimdet.run.writers import training_writers
except KeyboardInterrupt:
    sys.exit(_interrupted())

logger = logging.getLogger("mimdet.train")
SYNTHETIC_NAMES = ("synthetic_train", "synthetic_val")
TINY_MAE = "tiny-mae"  # train.mae_checkpoint value: the cached tiny MAE pre-training (made on first use)
RUN_FILES = ("config.yaml", "log.txt", "metrics.json", "last_checkpoint", "record.json")  # in --output


class RunConfigError(ValueError):
    """Flags and config that do not make a run."""


USER_ERRORS = (
    OverrideError,
    FileNotFoundError,
    RunConfigError,
    ConfigFileError,
    ModelConfigError,
    DatasetError,
    CheckpointError,
)


def known_failure(error: BaseException) -> tuple[int, str] | None:
    """The exit code and the one line for a failure the user can act on; None for a bug."""
    if isinstance(error, USER_ERRORS):
        return EXIT_BAD_INPUT, " ".join(worker_error_line(error).split())
    if isinstance(error, FloatingPointError):  # detectron2: "Loss became infinite or NaN at iteration=N!"
        return EXIT_FAILED, f"the training diverged: {(str(error).splitlines() or [''])[0]}"
    problem = storage_problem(error)
    return None if problem is None else (EXIT_STORAGE, problem)


def failure_line(error: BaseException) -> str:
    """The error as the record's one line: the known failure's line, else its type and message (of a
    data-loader worker's error, the worker's exception, not its traceback)."""
    known = known_failure(error)
    if known:
        return known[1]
    return " ".join((worker_exception_line(error) or f"{type(error).__name__}: {error}").split())


class KnownFailuresInOneLine(logging.Filter):
    """detectron2 logs a training's exception with its traceback; a known failure needs only its line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and known_failure(error) is not None:
            record.msg = f"{record.msg} {failure_line(error)}"
            record.exc_info, record.exc_text = None, None
        return True


ONE_LINE = KnownFailuresInOneLine()


def argument_parser() -> argparse.ArgumentParser:
    parser = default_argument_parser(epilog=__doc__)
    parser.add_argument(
        "--output", required=True, metavar="DIR", help="the run's folder (checkpoints, logs, record)"
    )
    parser.add_argument(
        "--run-id", default=None, help="identity written into the record (default: folder name)"
    )
    return parser


def prepare_config(args: argparse.Namespace) -> DictConfig:
    """The config with checked overrides and the output folder set; raises on bad input."""
    if not args.output:  # an unset shell variable: the run would be written into the current folder
        raise RunConfigError(
            "--output is empty (allowed: the run's folder, e.g. runs/tiny; here: --output .)"
        )
    output = Path(args.output).resolve()
    if not output.name:
        raise RunConfigError(f"--output {args.output}: the file system's root is no run's folder")
    cfg = resolve_run(args.config_file, args.opts).cfg
    cfg.train.output_dir = str(output)
    if args.num_gpus < 1:
        raise RunConfigError(f"--num-gpus {args.num_gpus}: a run has 1 process or more (on a CPU: 1)")
    if args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise RunConfigError(
            f"--num-machines {args.num_machines} --machine-rank {args.machine_rank}: "
            "1 machine or more, and a rank from 0 to their number minus 1"
        )
    if args.num_gpus > 1 and args.num_gpus > torch.cuda.device_count():
        raise RunConfigError(
            f"--num-gpus {args.num_gpus}: this machine has {torch.cuda.device_count()} CUDA devices"
            " (on a SLURM cluster, ask for GPUs in the job: one task per GPU joins the run)"
        )
    device = str(cfg.train.device)
    try:
        torch.device(device)
    except RuntimeError:
        raise RunConfigError(f"train.device={device} is not a device (allowed: cpu, cuda, cuda:N)") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunConfigError(
            f"train.device={device} but no CUDA device is visible (on the CPU: train.device=cpu"
            " train.amp.enabled=False)"
        )
    if cfg.train.amp.enabled and not device.startswith("cuda"):
        raise RunConfigError(
            f"train.amp.enabled=True needs CUDA (detectron2's AMPTrainer), train.device is {device}"
        )
    if args.eval_only and not cfg.train.init_checkpoint:
        raise RunConfigError(
            "--eval-only needs train.init_checkpoint=PATH (the trained run's model_final.pth)"
        )
    check_output_folder(output)
    if (args.eval_only or not args.resume) and (checkpoint := a_training_checkpoint(output)):
        raise RunConfigError(
            f"--output {output} holds a training's checkpoints ({checkpoint}): a run there without --resume "
            "would overwrite them and its record (--resume goes on from them; a fresh training or an "
            "evaluation needs a folder of its own)"
        )
    return cfg


def check_output_folder(output: Path) -> None:
    """The run's folder, or the nearest one above it that exists, must be a folder, and the files the run
    writes or reads again in it must be plain files where they exist; nothing is created.

    detectron2 would create the folder and go on when a file stands there, and fail later on its first
    write. A FIFO as ``log.txt``, ``metrics.json``, ``config.yaml`` or ``last_checkpoint`` made it wait
    forever; a link made it write into the file linked to (``config.yaml`` is rewritten), or read
    ``/dev/zero`` until the memory was full.
    """
    if in_the_way := file_in_the_way(output):
        raise RunConfigError(f"--output {output}: {in_the_way}")
    for name in RUN_FILES:
        if kind := not_a_plain_file(output / name):
            raise RunConfigError(
                f"--output {output}: {name} is {kind}, not a file (the run writes it; remove it)"
            )


def a_training_checkpoint(output: Path) -> str | None:
    """The name of a checkpoint a training left in ``output`` (its ``last_checkpoint`` tag or a
    ``model_*.pth``), or None: detectron2 would train from scratch over them, or an evaluation would
    replace the training's record with its own."""
    if (output / "last_checkpoint").exists():
        return "last_checkpoint"
    return next((path.name for path in sorted(output.glob("model_*.pth"))), None)


def resolve_mae_checkpoint(value: str) -> Path:
    """A checkpoint path, or the cached tiny MAE pre-training for ``tiny-mae``."""
    return ensure_tiny_mae_checkpoint() if value == TINY_MAE else Path(value)


def register_datasets(cfg: DictConfig) -> None:
    """Make the config's datasets known to detectron2 and check their files, and that the run fits its
    training set, before any training."""
    paths = cfg.get("dataset_paths") or {}
    for name, (json_file, image_root) in paths.items():
        register_coco_path(name, json_file, image_root)
    train_name = cfg.dataloader.train.dataset.names
    names = [train_name, cfg.dataloader.test.dataset.names]
    if any(name in SYNTHETIC_NAMES and name not in paths for name in names):
        register_synthetic()  # generated on first use under $DETECTRON2_DATASETS
    sizes = ensure_registered(train_name, training=True)
    ensure_registered(cfg.dataloader.test.dataset.names)
    if isinstance(train_name, str) and train_name in sizes:  # several names: no one size to check
        check_fits_dataset(cfg, train_name, sizes[train_name])


def check_fits_dataset(cfg: DictConfig, name: str, size: DatasetSize) -> None:
    """DatasetError unless the model tells apart at least the training set's categories and a batch holds
    no more than its images: before, a category beyond ``num_classes`` was an IndexError deep in the
    training (``Target 3 is out of bounds``), and a batch of 100,000 from 320 images ran out of files."""
    num_classes = OmegaConf.select(cfg, "model.roi_heads.num_classes", default=None)
    if isinstance(num_classes, int) and num_classes < size.categories:
        raise DatasetError(
            f"model.roi_heads.num_classes is {num_classes}: dataset {name!r} has {size.categories} "
            f"categories (allowed: {size.categories} or more)"
        )
    batch = cfg.dataloader.train.total_batch_size
    if isinstance(batch, int) and batch > size.images:
        raise DatasetError(
            f"dataloader.train.total_batch_size is {batch}: more than the {size.images} images of dataset "
            f"{name!r} (allowed: 1 to {size.images})"
        )


def train(cfg: DictConfig, args: argparse.Namespace, model: nn.Module) -> RunOutcome:
    """Train (resuming from the folder's last checkpoint with --resume), then evaluate."""
    optimizer_cfg = cfg.optimizer
    optimizer_cfg.params.model = model
    optimizer = instantiate(optimizer_cfg)
    train_loader = build_loader(cfg.dataloader.train)
    ddp_settings = dict(cfg.train.ddp)
    if not str(cfg.train.device).startswith("cuda"):  # gloo on the CPU: DDP takes no device ids
        ddp_settings["device_ids"] = None
    ddp_model = create_ddp_model(model, **ddp_settings)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(ddp_model, train_loader, optimizer)
    checkpointer = RunCheckpointer(
        model, cfg.train.output_dir, allow_partial=cfg.train.get("allow_partial_init", False), trainer=trainer
    )
    cost = CostHook(cfg.train.device, cfg.train.amp.enabled)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            cost,
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
            if comm.is_main_process()
            else None,
            hooks.PeriodicWriter(
                training_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period
            )
            if comm.is_main_process()
            else None,
        ]
    )
    resuming = args.resume and resume_from_newest_readable(checkpointer)
    if not resuming:
        checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=False)
    if not resuming and not cfg.train.init_checkpoint and cfg.train.mae_checkpoint:
        report = load_mae_checkpoint(
            model.get_submodule("backbone.bottom_up"), resolve_mae_checkpoint(cfg.train.mae_checkpoint)
        )
        logger.info("MAE initialisation: %s", report.summary())
    start_iter = trainer.iter + 1 if resuming else 0
    trainer.train(start_iter, cfg.train.max_iter)
    outcome = evaluate(cfg, model) if cfg.train.get("final_eval", True) else RunOutcome()
    # max_iter, or where a resumed run already was (stopped while it evaluated): there detectron2's
    # trainer.iter, after a loop of no step, counts one iteration more than were trained
    outcome.iterations = max(start_iter, cfg.train.max_iter)
    outcome.train_wall_time_s = cost.train_seconds
    outcome.sec_per_iter = cost.seconds_per_iteration
    outcome.shape_split = cost.shape_split
    outcome.peak_memory = cost.peak_memory
    return outcome


def resume_from_newest_readable(checkpointer: RunCheckpointer) -> bool:
    """Load the newest checkpoint of the run's folder that can be read; False if there is none.

    A checkpoint cut short on disk (a node lost mid-write, a full disk) is reported in one line and
    the previous one is tried, so the run restarts from there instead of dying on an unpickling error;
    so is a ``last_checkpoint`` that names a file outside the folder (another run's weights).
    """
    if not checkpointer.has_checkpoint():
        return False
    folder = Path(checkpointer.save_dir)
    try:
        newest = [Path(checkpointer.get_checkpoint_file())]
    except CheckpointUnreadable as error:
        logger.error("%s: trying the folder's checkpoints", error)
        newest = []
    older = sorted(folder.glob("model_*.pth"), key=lambda path: path.stat().st_mtime, reverse=True)
    for path in [*newest, *(p for p in older if p not in newest)]:
        try:
            checkpointer.load(str(path))
            return True
        except CheckpointUnreadable as error:
            reason = str(error).removeprefix(f"{path}: ")
            logger.error("checkpoint %s is unreadable (%s): trying the previous one", path, reason)
    return False


def evaluate(cfg: DictConfig, model: nn.Module) -> RunOutcome:
    """COCO AP (detectron2's COCOEvaluator) at the config's test ratio, and inference speed; BatchNorm
    statistics re-estimated at that ratio first if ``train.eval_precise_bn_iters`` asks for it."""
    if iterations := cfg.train.get("eval_precise_bn_iters", 0):
        recalibrate_batchnorm(model, build_loader(cfg.dataloader.train), iterations)
    timed = TimedModel(model)
    results = inference_on_dataset(
        timed, build_loader(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    )
    return RunOutcome(metrics=dict(results or {}), inference_images_per_s=timed.images_per_second)


def run(cfg: DictConfig, args: argparse.Namespace) -> None:
    """The work of one process (one per GPU under DDP); the main process writes the record."""
    default_setup(cfg, args)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="mimdet")  # into log.txt too
    logging.getLogger("detectron2.engine.train_loop").addFilter(ONE_LINE)  # its "Exception during training"
    output = Path(cfg.train.output_dir)
    started = time.perf_counter()
    model: nn.Module | None = None
    outcome = RunOutcome()
    try:
        register_datasets(cfg)
        model = build_model(cfg).to(cfg.train.device)
        if args.eval_only:
            checkpointer = RunCheckpointer(model, allow_partial=cfg.train.get("allow_partial_init", False))
            checkpoint = checkpointer.load(cfg.train.init_checkpoint)
            outcome = evaluate(cfg, model)
            outcome.iterations = int(checkpoint.get("iteration", -1)) + 1
        else:
            outcome = train(cfg, args, model)
    except Exception as error:  # not SystemExit: submitit exits that way when it requeues a job
        outcome.error = failure_line(error)
        if comm.is_main_process():
            try:
                _write(cfg, args, model, outcome)
            except Exception as record_error:  # noqa: BLE001 — the run's own error is the one to report
                logger.error("the failed record could not be written: %s", failure_line(record_error))
        raise
    if comm.is_main_process():
        record = _write(cfg, args, model, outcome)
        box, mask = record.metrics.bbox.AP, record.metrics.segm.AP
        print(
            f"mimdet.train: {record.stage} run {record.run_id} completed: {record.iterations} iterations, "
            f"box AP {_fmt(box)}, mask AP {_fmt(mask)}, {time.perf_counter() - started:.0f} s -> "
            f"{output / 'record.json'}",
            flush=True,
        )


def _write(
    cfg: DictConfig, args: argparse.Namespace, model: nn.Module | None, outcome: RunOutcome
) -> RunRecord:
    """The run's record; a Ctrl-C meanwhile waits until it is on disk (``sigint_deferred``): cut off, a
    failed run's record was none, and the run read as interrupted, to be restarted by a plain re-run."""
    with sigint_deferred():
        params = count_parameters(model) if model is not None else {"total": 0}
        parent = read_parent_run_id(cfg.train.init_checkpoint) if args.eval_only else None
        record = build_record(
            cfg,
            run_id=args.run_id or Path(cfg.train.output_dir).name,
            stage="eval" if args.eval_only else "train",
            parent_run_id=parent,
            config_file=args.config_file,
            overrides=list(args.opts),
            params=params,
            outcome=outcome,
            processes=comm.get_world_size(),
        )
        write_record(record, Path(cfg.train.output_dir) / "record.json")
    return record


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = argument_parser().parse_args(argv)
        quiet_third_party_warnings()
        cfg = prepare_config(args)
        launch(
            run,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(cfg, args),
        )
    except Exception as error:
        known = known_failure(error)
        if known is None:
            raise
        code, line = known
        print(f"mimdet.train: error: {line}", file=sys.stderr)
        return code
    except KeyboardInterrupt:  # run() writes no record for it: the run was cut off, it did not fail
        return _interrupted()
    return 0


if __name__ == "__main__":
    sys.exit(main())
