"""The model part of ``make demo``: the tiny MIMDet detector trains one step, then the parameter table of
every paper variant is printed beside the published counts (the sweep follows in the Makefile).

    python -m mimdet.demo

A Ctrl-C is one line, ``python -m mimdet.demo: interrupted``, exit 130; an output the file system refuses
(``> /dev/full``) is one line on stderr, exit 4.
"""

from __future__ import annotations

import os
import sys

from mimdet.run.exit_codes import EXIT_STORAGE, interrupted

PROG = "python -m mimdet.demo"

try:  # a Ctrl-C while torch and detectron2 load (seconds) is the same line as once main runs
    import argparse
    import time

    from mimdet.run.environment import quiet_third_party_warnings

    if __name__ == "__main__":  # detectron2 warns of torch's deprecations as it loads
        quiet_third_party_warnings()
    import torch
    from detectron2.utils.events import EventStorage

    from mimdet.data.random_batch import random_inputs
    from mimdet.modeling.param_count import count_parameters
    from mimdet.record.atomic import storage_problem
    from mimdet.record.variants import PAPER_VARIANTS
    from mimdet.run.config import build_model, load_config
    from mimdet.run.resolve import resolve_run
    from mimdet.run.sigint import sigint_noted
except KeyboardInterrupt:
    sys.exit(interrupted(PROG))


def train_step(config: str = "tiny_mimdet.py") -> dict[str, float]:
    """One forward/backward of a tiny detector on random non-square images; returns the losses."""
    cfg = load_config(config)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    inputs = random_inputs([(256, 192), (160, 256)], num_classes=cfg.model.roi_heads.num_classes)
    with EventStorage(0):
        losses = model(inputs)
    total = sum(losses.values())
    total.backward()
    with_grad = sum(p.grad is not None for p in model.parameters() if p.requires_grad)
    trainable = sum(1 for p in model.parameters() if p.requires_grad)
    print(f"{config}: one training step, {with_grad}/{trainable} trainable tensors got gradients")
    return {name: value.item() for name, value in losses.items()}


def parameter_table() -> str:
    """Markdown table: every paper variant's measured parameter count beside the published one."""
    lines = ["| variant | measured (M) | paper (M) | source | match |", "|---|---:|---:|---|:-:|"]
    for variant in PAPER_VARIANTS:
        counts = count_parameters(build_model(resolve_run(variant.config, variant.overrides).cfg, "meta"))
        published = (
            f"{variant.paper_params_m:.0f} (floored)" if variant.floored else f"{variant.paper_params_m:.2f}"
        )
        mark = "yes" if variant.matches(counts["total"]) else "NO"
        lines.append(
            f"| {variant.name} | {counts['total'] / 1e6:.2f} | {published} | {variant.source} | {mark} |"
        )
    return "\n".join(lines)


def component_table(config: str = "mimdet_vit_base.py") -> str:
    """Markdown table of one variant's parameters per component."""
    counts = count_parameters(build_model(load_config(config), "meta"))
    rows = [f"| {name} | {n:,} |" for name, n in counts.items()]
    return "\n".join([f"| {config} component | parameters |", "|---|---:|", *rows])


def demo() -> None:
    """The demo's output, flushed: a write the file system refuses is raised here, not at exit."""
    start = time.perf_counter()
    losses = train_step()
    print("losses: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(losses.items())))
    print()
    print(parameter_table())
    print()
    print(component_table())
    print(f"\ndemo finished in {time.perf_counter() - start:.1f} s")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    quiet_third_party_warnings()
    with sigint_noted() as ctrl_c:
        try:
            demo()
        except KeyboardInterrupt:
            return interrupted(PROG)
        except Exception as error:
            if ctrl_c:  # a Ctrl-C some code turned into its own error (a config "that cannot be loaded")
                return interrupted(PROG)
            if (problem := storage_problem(error)) is None:
                raise
            # what is left in stdout's buffer would be written, and refused, once more at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print(f"{PROG}: error: {problem} (writing the standard output)", file=sys.stderr)
            return EXIT_STORAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
