"""The sweep engine: declarative specs -> runs and their dependencies -> jobs (local or SLURM)."""
