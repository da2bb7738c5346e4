"""Backend selection: the only subpackage that imports numpy, cupy, torch or jax.

Arrays passed to portable_nn functions keep their own namespace and device; the *active*
backend only decides where newly created arrays (weights, ``pnn.asarray`` data) live.
"""

from .arrays import (
    backend_name_of,
    canonical_device,
    device_of,
    device_scope,
    flat_views,
    has_dtype,
    has_view_slices,
    host_to,
    host_to_async,
    integer_range,
    is_array,
    is_writeable,
    namespace_and_device,
    namespace_of,
    read_scalars,
    same_device,
    to_numpy,
)
from .host_random import HostStream
from .native import native
from .registry import BACKEND_NAMES, BackendUnavailableError, cuda_problem
from .state import (
    Backend,
    asarray,
    backend_of,
    get_backend,
    make_backend,
    move,
    set_backend,
    use_backend,
)

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "HostStream",
    "asarray",
    "backend_name_of",
    "backend_of",
    "canonical_device",
    "device_of",
    "device_scope",
    "flat_views",
    "cuda_problem",
    "get_backend",
    "has_dtype",
    "has_view_slices",
    "host_to",
    "host_to_async",
    "integer_range",
    "is_array",
    "is_writeable",
    "make_backend",
    "move",
    "namespace_and_device",
    "namespace_of",
    "native",
    "read_scalars",
    "same_device",
    "set_backend",
    "to_numpy",
    "use_backend",
]
