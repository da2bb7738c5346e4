"""Model checkpoints: architecture, weights, optimizer state, RNG state and epoch in one file.

File layout (safetensors, see :mod:`portable_nn.io.format`):

* tensors ``"0.weight"``, ``"2.running_mean"`` ... — the model's ``state_dict()``;
* tensors ``"optimizer/<key>"`` — the optimizer's array state (full-model files only);
* ``__metadata__`` (all values strings): ``format="portable_nn"``, ``format_version="1"``,
  ``content`` (``"model"`` or ``"weights"``), ``portable_nn_version``, and for model files
  ``model_class`` plus the JSON texts ``model_config``, ``compile_config`` (when compiled),
  ``optimizer_state`` (``{"step": n}``) and ``training_state`` (``{"epoch", "rng"}``).

Loading validates the whole file (layout, values, names, shapes, dtypes) before anything is
assigned, so a bad file raises ``ValueError`` and leaves the model as it was.
"""

from __future__ import annotations

import json
from typing import Any

from portable_nn.backend import Backend, namespace_and_device, namespace_of

from . import training_state
from .atomic import PathLike, atomic_open
from .tensors import host_copies, read_host, resolve_backend, to_device, write_host

FORMAT = "portable_nn"
FORMAT_VERSION = "1"
OPTIMIZER_PREFIX = "optimizer/"


def _metadata(content: str) -> dict[str, str]:
    from portable_nn import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "content": content,
        "portable_nn_version": __version__,
    }


def _require_built(model: Any, what: str) -> None:
    if not getattr(model, "built", False):
        raise ValueError(
            f"{what}: model {getattr(model, 'name', model)!r} is not built, so it has no "
            "weights yet; call model.build((None, features)) or run it on data first"
        )


def _read_ours(path: PathLike, allow_nonfinite: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Validated host tensors and metadata of a portable_nn file; ``ValueError`` otherwise."""
    host, metadata = read_host(path, allow_nonfinite=allow_nonfinite)
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is a safetensors file but not a portable_nn checkpoint (no "
            f"format={FORMAT!r} in its metadata); read foreign files with pnn.io.load_tensors"
        )
    version = metadata.get("format_version", "")
    if not version.isdigit():
        raise ValueError(f"{str(path)!r}: format_version {version!r} is not a number")
    if int(version) > int(FORMAT_VERSION):
        raise ValueError(
            f"{str(path)!r} was written in checkpoint format {version}; this portable_nn reads "
            f"format {FORMAT_VERSION} and older: upgrade portable_nn"
        )
    return host, metadata


# -- weights only -----------------------------------------------------------------------------
def save_weights(model: Any, path: PathLike, *, overwrite: bool = True) -> None:
    """Save ``model.state_dict()`` (parameters and buffers) to a safetensors file, atomically."""
    _require_built(model, "save_weights")
    host = host_copies(model.state_dict())
    with atomic_open(path, overwrite=overwrite) as file:
        write_host(file, host, _metadata("weights"))


def load_weights(model: Any, path: PathLike, *, allow_nonfinite: bool = False) -> None:
    """Load weights saved by :func:`save_weights` or :func:`save_model` into a built ``model``.

    Arrays go to the namespace and device of the model's current weights, keeping their dtype.
    Names, shapes and dtypes must match exactly (``ValueError`` naming the tensor otherwise),
    and NaN/inf values are refused unless ``allow_nonfinite``. The model is unchanged on error.
    """
    _require_built(model, "load_weights")
    host, _ = _read_ours(path, allow_nonfinite)
    weights = {k: v for k, v in host.items() if not k.startswith(OPTIMIZER_PREFIX)}
    own = model.state_dict()
    _check_fit(path, own, weights)
    if own:
        xp, device = namespace_and_device(*own.values())
        model.load_state_dict(to_device(weights, xp, device))


def _check_fit(path: PathLike, own: dict[str, Any], weights: dict[str, Any]) -> None:
    """Names, shapes and dtypes of host ``weights`` against the model's ``own`` arrays."""
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{str(path)!r} does not fit the model: missing tensors {missing}, "
            f"unexpected tensors {unexpected}"
        )
    for name, value in own.items():
        if tuple(value.shape) != weights[name].shape:
            raise ValueError(
                f"{str(path)!r}: tensor {name!r} has shape {weights[name].shape}, "
                f"the model expects {tuple(value.shape)}"
            )
        stored = weights[name].dtype
        if getattr(namespace_of(value), stored.name, None) != value.dtype:
            raise ValueError(
                f"{str(path)!r}: tensor {name!r} has dtype {stored}, "
                f"the model expects {value.dtype}"
            )


# -- whole model ------------------------------------------------------------------------------
def save_model(
    model: Any, path: PathLike, *, include_optimizer: bool = True, overwrite: bool = True
) -> None:
    """Save architecture, weights, compile settings, optimizer state, RNG state and epoch.

    Parameters
    ----------
    model : a ``Sequential`` (built or not; compiled or not).
    path : destination file; replaced atomically, only once the new file is complete.
    include_optimizer : also store the optimizer's state and step (needed to resume training).
    overwrite : when False an existing ``path`` raises ``FileExistsError``.
    """
    metadata = _metadata("model")
    metadata["model_config"] = json.dumps(model.get_config())
    host = host_copies(model.state_dict())
    metadata.update(training_state.describe(model))
    if include_optimizer and getattr(model, "optimizer", None) is not None:
        arrays, scalars = training_state.optimizer_state(model.optimizer)
        host.update(host_copies({OPTIMIZER_PREFIX + k: v for k, v in arrays.items()}))
        metadata["optimizer_state"] = json.dumps(scalars)
    with atomic_open(path, overwrite=overwrite) as file:
        write_host(file, host, metadata)


def load_model(
    path: PathLike,
    *,
    backend: Backend | str | None = None,
    compile: bool = True,
    allow_nonfinite: bool = False,
    custom_objects: dict[str, Any] | None = None,
) -> Any:
    """Rebuild a model saved by :func:`save_model`, ready to predict or to resume training.

    Parameters
    ----------
    path : the checkpoint.
    backend : where the model lives: a Backend, a backend name, or None for the active one.
        The floating dtype of the saved weights is kept (a float64 model loads as float64).
    compile : restore loss, metrics, optimizer and optimizer state (when saved).
    allow_nonfinite : accept NaN/inf in stored tensors (refused by default).
    custom_objects : user functions by name (custom metric functions) for rebuilding.

    Any problem with the file raises ``ValueError`` naming the tensor or the field.
    """
    host, metadata = _read_ours(path, allow_nonfinite)
    if metadata.get("content") != "model":
        raise ValueError(
            f"{str(path)!r} holds weights only, without an architecture; build the model and "
            "call load_weights instead"
        )
    weights = {k: v for k, v in host.items() if not k.startswith(OPTIMIZER_PREFIX)}
    target = training_state.backend_for(resolve_backend(backend), weights)
    config = _json_field(path, metadata, "model_config")
    model_class = metadata.get("model_class", "Sequential")
    model = training_state.build_model(path, model_class, config, target)
    if weights or model.built:
        _require_built(model, f"load_model({str(path)!r})")
        _check_fit(path, model.state_dict(), weights)
        model.load_state_dict(to_device(weights, target.xp, target.device))
    optimizer_arrays = {
        k[len(OPTIMIZER_PREFIX) :]: v for k, v in host.items() if k.startswith(OPTIMIZER_PREFIX)
    }
    fields = {
        name: _json_field(path, metadata, name)
        for name in ("compile_config", "optimizer_state", "training_state")
        if name in metadata
    }
    optimizer_arrays = to_device(optimizer_arrays, target.xp, target.device)
    training_state.restore(path, model, fields, optimizer_arrays, compile, custom_objects)
    return model


def _json_field(path: PathLike, metadata: dict[str, str], name: str) -> Any:
    if name not in metadata:
        raise ValueError(f"{str(path)!r}: the metadata has no {name!r}")
    try:
        return json.loads(metadata[name])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{str(path)!r}: metadata field {name!r} is not valid JSON: {exc}"
        ) from None


__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "load_weights", "save_model", "save_weights"]
