"""Shared pytest configuration for the mimdet-ablate tests."""

# the session-scoped `slurm_cluster` fixture (local SLURM for the submitit end-to-end tests)
pytest_plugins = ["tests.slurm_cluster"]
