"""portable_nn: neural networks written once against the Python array API standard.

The same layers, losses and optimizers run on NumPy, CuPy, PyTorch, JAX or array-api-strict
arrays. Public names are loaded on first use (PEP 562), so importing the package is cheap and
an optional library (torch, jax, cupy) is imported only when its backend is chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "Backend": ("portable_nn.backend", "Backend"),
    "BackendUnavailableError": ("portable_nn.backend", "BackendUnavailableError"),
    "set_backend": ("portable_nn.backend", "set_backend"),
    "use_backend": ("portable_nn.backend", "use_backend"),
    "get_backend": ("portable_nn.backend", "get_backend"),
    "asarray": ("portable_nn.backend", "asarray"),
    "to_numpy": ("portable_nn.backend", "to_numpy"),
    "seed": ("portable_nn.random", "seed"),
    "random": ("portable_nn.random", None),
    "init": ("portable_nn.init", None),
    "functional": ("portable_nn.functional", None),
    "losses": ("portable_nn.losses", None),
    "gradcheck": ("portable_nn.grad_check", "gradcheck"),
    "GradcheckError": ("portable_nn.grad_check", "GradcheckError"),
    "layers": ("portable_nn.layers", None),
    "Sequential": ("portable_nn.models", "Sequential"),
    "Input": ("portable_nn.graph", "Input"),
    "Model": ("portable_nn.graph", "Model"),
    "optimizers": ("portable_nn.optimizers", None),
    "regularizers": ("portable_nn.regularizers", None),
    "metrics": ("portable_nn.metrics", None),
    "callbacks": ("portable_nn.callbacks", None),
    "History": ("portable_nn.callbacks", "History"),
    "io": ("portable_nn.io", None),
    "distributed": ("portable_nn.distributed", None),
    "load_model": ("portable_nn.io", "load_model"),
    "save_model": ("portable_nn.io", "save_model"),
    "load_weights": ("portable_nn.io", "load_weights"),
    "save_weights": ("portable_nn.io", "save_weights"),
    "plot": ("portable_nn.plot", None),
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'portable_nn' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
