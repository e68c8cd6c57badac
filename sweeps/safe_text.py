"""What text may reach ``sbatch`` and the job script it reads, checked when a spec is loaded.

submitit writes each resource as ``#SBATCH --key='value'`` (the value shell-quoted, the key not) and the
store's folders into ``--output`` and the ``srun`` line. A newline in any of them ends the ``#SBATCH``
line: sbatch stops reading options there and bash runs the rest as a command. So control characters are
refused everywhere; SLURM names (partition, account, qos) and constraints are held to the characters
their syntax has; ``sbatch_extra`` keys must be option names and may not take over the options the engine
sets itself. A row label, which every table and status line shows, may not hold control characters
either. Each function returns the problem as ``text (allowed: ...)``, or None.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*", re.ASCII)
_NAME_ALLOWED = "letters, digits, _ . + - and commas between names"
_SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
_SWEEP_NAME_ALLOWED = "letters, digits, _ . and -, beginning with a letter or digit"
_CONSTRAINT = re.compile(r"[A-Za-z0-9_.+:,&|*!()\[\]-]+", re.ASCII)
_CONSTRAINT_ALLOWED = "feature names with & | * , ! ( ) [ ]"
_OPTION = re.compile(r"[A-Za-z][A-Za-z0-9_-]*", re.ASCII)
ENGINE_OPTIONS = {  # set by the sweep engine or submitit: an extra value would break the job's files or order
    "job-name", "output", "error", "open-mode", "array", "signal", "hold", "requeue", "dependency",
    "kill-on-invalid-dep", "wrap", "parsable",
}  # fmt: skip
RESOURCE_OPTIONS = {  # options the spec has a resources key for
    "partition": "partition", "account": "account", "qos": "qos", "constraint": "constraint",
    "nodes": "nodes", "time": "time_min", "cpus-per-task": "cpus_per_task", "gpus-per-node": "gpus_per_node",
    "mem": "mem_gb", "ntasks-per-node": "gpus_per_node",
}  # fmt: skip


def control_character(text: str) -> str | None:
    """The first character that could end or hide a line (control, format, line separator), named."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            name = _CONTROL_NAMES.get(char) or unicodedata.name(char, f"U+{ord(char):04X}").lower()
            return f"{name} ({char!r})"
    return None


_CONTROL_NAMES = {"\n": "line feed", "\r": "carriage return", "\t": "tab", "\x00": "NUL", "\x1b": "escape"}


def path_problem(text: str) -> str | None:
    """Why a path that reaches the job script cannot be used there, or None."""
    if found := control_character(text):
        return f"{text!r} holds a control character, {found} (allowed: a path without control characters)"
    return None


def label_problem(text: str) -> str | None:
    """A row label: shown in every table, status line and figure, where a control character would end or
    hide a line."""
    if found := control_character(text):
        return f"{text!r} holds a control character, {found} (allowed: printable text)"
    return None


def home_problem(text: str) -> str | None:
    """A path that begins ``~USER`` of no user here: Python cannot expand it (a ``RuntimeError``)."""
    try:
        Path(text).expanduser()
    except RuntimeError:  # "Could not determine home directory."
        user = text[1:].split("/", 1)[0]
        return f"{text!r}: ~{user} is no user here (allowed: ~ or ~USER of a user here, or a path without ~)"
    return None


def store_root_problem(text: str) -> str | None:
    """A store root also may not hold ``%``: SLURM reads its job log paths as file-name patterns; nor be
    only white space (``--root " "``, a stray space in a variable), a folder nobody means."""
    if not text.strip():
        return f"{text!r} is only white space (allowed: a folder's path)"
    if "%" in text:
        return f"{text!r} holds '%', which SLURM reads as a file-name pattern (allowed: a path without %)"
    return home_problem(text) or path_problem(text)


def sweep_name_problem(text: str) -> str | None:
    """A sweep's name: a word of letters, digits, ``_ . -`` (as its spec's name is shown and quoted)."""
    return _pattern_problem(text, _SWEEP_NAME, "a sweep name", _SWEEP_NAME_ALLOWED)


def slurm_name_problem(text: str) -> str | None:
    """A partition, account or qos: SLURM names, or a comma-separated list of them."""
    return _pattern_problem(text, _NAME, "a SLURM name", _NAME_ALLOWED)


def constraint_problem(text: str) -> str | None:
    return _pattern_problem(text, _CONSTRAINT, "a SLURM constraint", _CONSTRAINT_ALLOWED)


def sbatch_option_problem(key: str, value: str) -> str | None:
    """An ``sbatch_extra`` entry: an option name that is not the engine's or a resources key's, and a
    value without control characters (submitit quotes it for the shell)."""
    option = key.replace("_", "-")
    if not _OPTION.fullmatch(key):
        return f"{key!r} is not an sbatch option name (allowed: letters, digits, - and _, e.g. mail-type)"
    if option in ENGINE_OPTIONS:
        return f"--{option} is set by the sweep engine (allowed: any other sbatch option)"
    if option in RESOURCE_OPTIONS:
        return f"--{option} has its own key (allowed: resources.{RESOURCE_OPTIONS[option]})"
    if found := control_character(value):
        return f"the value of {key} holds a control character, {found} (allowed: printable text)"
    if not value:
        return f"the value of {key} is empty (allowed: a value; leave the option out instead)"
    return None


def _pattern_problem(text: str, pattern: re.Pattern[str], what: str, allowed: str) -> str | None:
    if pattern.fullmatch(text):
        return None
    if found := control_character(text):
        return f"{text!r} holds a control character, {found} (allowed: {allowed})"
    return f"{text!r} is not {what} (allowed: {allowed})"
