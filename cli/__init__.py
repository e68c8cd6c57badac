"""The ``sweep`` command: above both the sweep engine (``sweeps``) and the analysis (``analysis``).

The packages import downward only: ``mimdet`` (model, one run) -> ``sweeps`` and ``analysis`` -> ``cli``;
``tests/test_import_layers.py`` holds them to it.
"""
