"""The exit codes of ``mimdet.train`` and ``sweep``: what a run's process tells the one that started it.

The local executor reads them to tell an interrupted run (resumed by a plain ``sweep run``) from a failed
one; the standard library only, so that the entry points can import it before torch loads.
"""

import sys

EXIT_FAILED = 1  # the run failed on its own terms (a training that diverged): its record says how
EXIT_BAD_INPUT = 2  # flags, overrides, a spec, a config, a dataset or a checkpoint that cannot be used
EXIT_STORAGE = 4  # the file system refused a write (full, read-only, no permission)
EXIT_INTERRUPTED = 130  # a Ctrl-C, as the shell reports a process SIGINT stopped (128 + 2); no record


def interrupted(program: str) -> int:
    """A Ctrl-C: ``PROGRAM: interrupted`` on stderr, no traceback, and its exit code; one line however far
    the program had got, so that whoever started it reads it cut off, not failed."""
    print(f"{program}: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED
