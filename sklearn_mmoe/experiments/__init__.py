"""Paper reproductions: the experiments behind ``python -m sklearn_mmoe``.

Not imported by ``import sklearn_mmoe``; import the modules you need.
"""
