"""The paper's tables: what each one is (``tables``) and the numbers it prints (``published``, the CSVs here).

Facts about the paper, not results: the sweep engine validates and costs specs with them and the analysis
renders and prints them beside a user's results, so they live in ``mimdet``, the layer both depend on.
"""
