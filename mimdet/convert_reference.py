"""Convert a checkpoint written by the reference code (hustvl/MIMDet) into this project's layout.

    python -m mimdet.convert_reference SRC.pth DST.pth

SRC: a MIMDet ViT-B/L or Benchmarking ViT-B checkpoint of the reference code, as detectron2 saves it
(``{"model": state_dict, ...}``) or a bare state dict; which model it is follows from its keys. DST:
``{"model": state_dict}`` for ``train.init_checkpoint=DST.pth`` with the ``experiments/*_reference.py``
config the summary names (in the command to evaluate it). Every tensor must fit that config's model
exactly and every tensor of the model must come from SRC; otherwise nothing is written. Exit status 0;
2 with one line on stderr for an input that is not such a checkpoint, or a DST that is SRC; 4 where the
file system refuses the write (full, read-only, a file in the way of DST's folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mimdet.record.atomic import storage_problem
from mimdet.run.environment import quiet_third_party_warnings
from mimdet.run.exit_codes import EXIT_BAD_INPUT, EXIT_STORAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mimdet.convert_reference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", type=Path, help="checkpoint written by the reference code")
    parser.add_argument("dst", type=Path, help="where to write the converted checkpoint")
    args = parser.parse_args(argv)
    quiet_third_party_warnings()  # before detectron2 is imported: its imports warn under torch 2.14
    from mimdet.modeling.checkpoint import CheckpointError
    from mimdet.modeling.reference_checkpoint import KEY_DEPTH, convert

    try:
        model, report = convert(args.src, args.dst)
    except CheckpointError as error:
        print(f"mimdet.convert_reference: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        if (problem := storage_problem(error)) is None:
            raise
        print(f"mimdet.convert_reference: error: {problem}", file=sys.stderr)
        return EXIT_STORAGE
    print(f"{args.src}: {model.name}; {report.summary(KEY_DEPTH)}")
    print(
        f"wrote {args.dst}: python -m mimdet.train --config-file experiments/{model.config} --eval-only "
        f"train.init_checkpoint={args.dst}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
