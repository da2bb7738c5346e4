"""Pure array functions: activations ``f(x)`` / ``f_grad(x, dy)`` and special functions.

No classes and no state: every function takes arrays of any array-API library and returns
arrays in the same namespace, on the same device, in the same dtype.
"""

# Each module's __all__ is the single list of its public names; this package re-exports them.
from .activations import *  # noqa: F403
from .activations import __all__ as _activation_names
from .positions import sinusoidal_positions
from .softmax import *  # noqa: F403
from .softmax import __all__ as _softmax_names
from .special import erf, erfc, normal_cdf, normal_cdf_fast

__all__ = ["erf", "erfc", "normal_cdf", "normal_cdf_fast", "sinusoidal_positions"]
__all__ += set(_activation_names) | set(_softmax_names)  # activations re-exports softmax
__all__.sort()
