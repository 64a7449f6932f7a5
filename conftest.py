"""Test configuration shared by tests/ and the doctests in sklearn_mmoe/."""

import os

# scikit-learn's array-API input check is skipped unless SciPy's array API
# mode is switched on before SciPy is imported; switch it on so that no
# estimator check is skipped.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
