"""One training or evaluation run, below its entry point ``mimdet.train``: the config with its overrides
resolved, the optimiser and schedule, checkpoints, the cost measured while it runs, the environment it
reports, and the stride-4 feature maps read back from its model (Fig. 2)."""
