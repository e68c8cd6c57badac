"""The test suite. ``REPO``: the repository root, where the commands the tests run start."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
