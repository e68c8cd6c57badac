"""The run record, the contract between the layers: its schema and files (``schema``), how a finished
run fills it (``from_run``), the variant a config is (``variants``), atomic writes (``atomic``) and
made-up records for tests and benchmarks (``examples``)."""
