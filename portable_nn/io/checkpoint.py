"""Model checkpoints: architecture, weights, optimizer state, RNG state and epoch in one file.

A plain safetensors file: tensors ``"0.weight"``, ``"2.running_mean"`` ... (the model's
``state_dict()``) and, in full-model files, ``"optimizer/<key>"`` (the optimizer's arrays);
``__metadata__`` strings ``format="portable_nn"``, ``format_version="1"``, ``content``
(``"model"`` or ``"weights"``), ``portable_nn_version``, and for model files ``model_class``
plus the JSON texts ``model_config``, ``compile_config`` (when compiled), ``optimizer_state``
(``{"step": n}``) and ``training_state`` (``{"epoch", "rng"}``).

Loading checks the header before any data is read and the whole file before anything is
assigned: names, shapes and dtypes against the model; JSON fields for size and depth; and the
architecture is rebuilt only as large as the file's own tensors (``weight_budget``). Problems
raise ``ValueError`` naming the path and the tensor or the field, and leave the model as it was.
"""

from __future__ import annotations

import math
from typing import Any

from portable_nn.backend import Backend, namespace_and_device, namespace_of
from portable_nn.layers._weights import weight_budget

from . import training_state as state
from .atomic import PathLike
from .tensors import DTYPES, Reader, open_file, resolve_backend, save_tensors, short
from .training_state import OPTIMIZER

FORMAT = "portable_nn"
FORMAT_VERSION = "1"


def _metadata(content: str, fields: dict[str, str] | None = None) -> dict[str, str]:
    from portable_nn import __version__

    ours = {"format": FORMAT, "format_version": FORMAT_VERSION, "content": content}
    return {**ours, "portable_nn_version": __version__, **(fields or {})}


def _require_built(model: Any, what: str) -> None:
    if not getattr(model, "built", False):
        raise ValueError(
            f"{what}: model {getattr(model, 'name', model)!r} is not built, so it has no "
            "weights yet; call model.build((None, features)) or run it on data first"
        )


def _check_ours(metadata: dict[str, str]) -> None:
    """``ValueError`` unless ``metadata`` marks a portable_nn checkpoint this version reads."""
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"not a portable_nn checkpoint (no format={FORMAT!r} in its metadata); read other "
            "safetensors files with pnn.io.load_tensors"
        )
    version = metadata.get("format_version", "")
    if not (version.isascii() and version.isdigit() and len(version) < 9):
        raise ValueError(f"format_version {short(repr(version))} is not a number")
    if int(version) > int(FORMAT_VERSION):
        raise ValueError(
            f"written in checkpoint format {version}; this portable_nn reads format "
            f"{FORMAT_VERSION} and older: upgrade portable_nn"
        )


def _load_state(reader: Reader, model: Any, allow_nonfinite: bool) -> None:
    """The file's model tensors into ``model``: names, shapes and dtypes checked against
    ``model.state_dict()`` from the header, then every tensor read, then all assigned."""
    own = model.state_dict()
    names = [n for n in reader.names if not n.startswith(OPTIMIZER)]
    present = set(names)
    missing, unexpected = [k for k in own if k not in present], [k for k in names if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"the file does not fit the model: missing tensors {missing[:10]}, unexpected "
            f"tensors {unexpected[:10]}"
            + (" (the first 10)" if max(len(missing), len(unexpected)) > 10 else "")
        )
    for name, value in own.items():
        code, shape = reader.info(name)
        if tuple(value.shape) != shape:
            problem = f"shape {shape}, the model expects {tuple(value.shape)}"
        elif getattr(namespace_of(value), DTYPES[code], None) != value.dtype:
            problem = f"dtype {DTYPES[code]}, the model expects {value.dtype}"
        else:
            continue
        raise ValueError(f"tensor {name!r} has {problem}")
    if own:
        model.load_state_dict({n: reader.read(n, allow_nonfinite) for n in own})


def save_weights(model: Any, path: PathLike, *, overwrite: bool = True) -> None:
    """Save ``model.state_dict()`` (parameters and buffers) to a safetensors file, atomically."""
    _require_built(model, "save_weights")
    save_tensors(path, model.state_dict(), _metadata("weights"), overwrite=overwrite)


def load_weights(model: Any, path: PathLike, *, allow_nonfinite: bool = False) -> None:
    """Load weights saved by :func:`save_weights` or :func:`save_model` into a built ``model``.

    Arrays go to the namespace and device of the model's current weights, keeping their dtype.
    Names, shapes and dtypes must match exactly (``ValueError`` naming the tensor otherwise),
    and NaN/inf values are refused unless ``allow_nonfinite``. The model is unchanged on error.
    """
    _require_built(model, "load_weights")
    own = model.state_dict()
    xp, device = namespace_and_device(*own.values()) if own else (None, None)
    with open_file(path, xp, device) as reader:
        _check_ours(reader.metadata)
        _load_state(reader, model, allow_nonfinite)


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
    fields, optimizer = state.describe(model, include_optimizer)
    tensors = {**model.state_dict(), **optimizer}
    save_tensors(path, tensors, _metadata("model", fields), overwrite=overwrite)


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

    Any problem with the file raises ``ValueError`` naming the path and the tensor or field.
    """
    target = resolve_backend(backend)
    with open_file(path, target.xp, target.device) as reader:
        metadata = reader.metadata
        _check_ours(metadata)
        if metadata.get("content") != "model":
            raise ValueError(
                "it holds weights only, without an architecture; build the model and call "
                "load_weights instead"
            )
        fields = state.read_fields(metadata)
        infos = [reader.info(n) for n in reader.names if not n.startswith(OPTIMIZER)]
        floats = {DTYPES[code] for code, _ in infos} & {"float16", "float32", "float64"}
        if floats in ({"float32"}, {"float64"}):  # the saved weights' dtype (float64 stays so)
            target = target.placed(dtype=floats.pop())
        with weight_budget(sum(math.prod(shape) for _, shape in infos)):
            model_class = metadata.get("model_class", "Sequential")
            model = state.build_model(model_class, fields["model_config"], target)
        if infos or model.built:
            _require_built(model, "load_model")
            _load_state(reader, model, allow_nonfinite)
        if compile and "compile_config" in fields:
            state.compile_model(model, fields["compile_config"], custom_objects)
            if "optimizer_state" in fields:
                scalars = fields["optimizer_state"]
                state.load_optimizer_state(model, scalars, reader, allow_nonfinite)
        state.restore_training(model, fields.get("training_state", {}))
    return model
