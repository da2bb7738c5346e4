"""scikit-learn estimators trained by portable_nn where the data lives (``pip install
portable_nn[sklearn]``): :class:`MLPClassifier` and :class:`MLPRegressor`, drop-in replacements
for scikit-learn's, on NumPy, torch, CuPy, JAX or array-api-strict arrays.

Importing :mod:`portable_nn` does not import scikit-learn; importing this module does.
"""

from .checks import EXPECTED_FAILED_CHECKS
from .classifier import MLPClassifier
from .regressor import MLPRegressor

__all__ = ["EXPECTED_FAILED_CHECKS", "MLPClassifier", "MLPRegressor"]
