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
raise ``ValueError`` naming the tensor or the field and leave the model as it was.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from portable_nn.backend import Backend, namespace_and_device, namespace_of
from portable_nn.layers._weights import weight_budget

from . import training_state as state
from .atomic import PathLike
from .tensors import DTYPES, Reader, open_file, resolve_backend, save_tensors, short

FORMAT = "portable_nn"
FORMAT_VERSION = "1"
OPTIMIZER = "optimizer/"  # name prefix of optimizer tensors
JSON_FIELDS = ("model_config", "compile_config", "optimizer_state", "training_state")
MAX_JSON_CHARS, MAX_JSON_DEPTH = 2**20, 32  # per field; a nested Sequential adds 3 levels
MAX_CLASSES = 2048  # objects named by "class_name" per field: building n layers costs O(n²) today


def _metadata(content: str) -> dict[str, str]:
    from portable_nn import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "content": content,
            "portable_nn_version": __version__}  # fmt: skip


def _require_built(model: Any, what: str) -> None:
    if not getattr(model, "built", False):
        raise ValueError(
            f"{what}: model {getattr(model, 'name', model)!r} is not built, so it has no "
            "weights yet; call model.build((None, features)) or run it on data first"
        )


def _check_ours(reader: Reader) -> dict[str, str]:
    """The metadata of a portable_nn checkpoint this version reads; ``ValueError`` otherwise."""
    path, metadata = reader.path, reader.metadata
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} is a safetensors file but not a portable_nn checkpoint (no "
            f"format={FORMAT!r} in its metadata); read foreign files with pnn.io.load_tensors"
        )
    version = metadata.get("format_version", "")
    if not (version.isascii() and version.isdigit() and len(version) < 9):
        raise ValueError(f"{path!r}: format_version {short(repr(version))} is not a number")
    if int(version) > int(FORMAT_VERSION):
        raise ValueError(
            f"{path!r} was written in checkpoint format {version}; this portable_nn reads "
            f"format {FORMAT_VERSION} and older: upgrade portable_nn"
        )
    return metadata


def _check_fit(reader: Reader, own: dict[str, Any], names: list[str]) -> None:
    """Names, shapes and dtypes in the header against the model's ``own`` arrays."""
    present = set(names)
    missing, unexpected = [k for k in own if k not in present], [k for k in names if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{reader.path!r} does not fit the model: missing tensors {missing[:10]}, "
            f"unexpected tensors {unexpected[:10]}"
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
        raise ValueError(f"{reader.path!r}: tensor {name!r} has {problem}")


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
        _check_ours(reader)
        _check_fit(reader, own, [n for n in reader.names if not n.startswith(OPTIMIZER)])
        weights = {n: reader.read(n, xp, device, allow_nonfinite) for n in own}
    if own:
        model.load_state_dict(weights)


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
    metadata = {**_metadata("model"), "model_config": json.dumps(model.get_config())}
    tensors = dict(model.state_dict())
    metadata.update(state.describe(model))
    if include_optimizer and getattr(model, "optimizer", None) is not None:
        arrays, metadata["optimizer_state"] = state.optimizer_state(model.optimizer)
        tensors.update({OPTIMIZER + k: v for k, v in arrays.items()})
    save_tensors(path, tensors, metadata, overwrite=overwrite)


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
    target = resolve_backend(backend)
    with open_file(path, target.xp, target.device) as reader:
        path, metadata = reader.path, _check_ours(reader)
        if metadata.get("content") != "model":
            raise ValueError(
                f"{path!r} holds weights only, without an architecture; build the model and "
                "call load_weights instead"
            )
        if "model_config" not in metadata:
            raise ValueError(f"{path!r}: the metadata has no 'model_config'")
        fields = {k: _json_field(path, metadata, k) for k in JSON_FIELDS if k in metadata}
        names = [n for n in reader.names if not n.startswith(OPTIMIZER)]
        infos = [reader.info(n) for n in names]
        target = state.backend_for(target, [DTYPES[code] for code, _ in infos])
        with weight_budget(sum(math.prod(shape) for _, shape in infos)):
            model_class = metadata.get("model_class", "Sequential")
            model = state.build_model(path, model_class, fields["model_config"], target)
        xp, device = target.xp, target.device
        if names or model.built:
            _require_built(model, f"load_model({path!r})")
            _check_fit(reader, model.state_dict(), names)
            model.load_state_dict({n: reader.read(n, xp, device, allow_nonfinite) for n in names})
        compiled = compile and state.compile_model(
            path, model, fields.get("compile_config"), custom_objects
        )
        if compiled and "optimizer_state" in fields:
            slots = _optimizer_slots(reader, model)
            arrays = {k: reader.read(OPTIMIZER + k, xp, device, allow_nonfinite) for k in slots}
            state.load_optimizer_state(path, model, fields["optimizer_state"], arrays)
        state.restore_training(path, model, fields.get("training_state"))
    return model


def _optimizer_slots(reader: Reader, model: Any) -> list[str]:
    """Names of the optimizer tensors, each checked to be ``<parameter>.<slot>`` (before any
    is read: a corrupt file could hold thousands of empty ones)."""
    params, slots = model.parameters(), getattr(model.optimizer, "slot_names", None)
    keys = [n[len(OPTIMIZER) :] for n in reader.names if n.startswith(OPTIMIZER)]
    for key in keys:
        param, _, slot = key.rpartition(".")
        if param not in params or (isinstance(slots, tuple) and slot not in slots):
            raise ValueError(
                f"{reader.path!r}: the optimizer state does not fit: tensor "
                f"{short(repr(OPTIMIZER + key))} is no slot {slots} of a parameter"
            )
    return keys


STRINGS, NOT_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"'), re.compile(r"[^][{}]+")
INNERMOST = re.compile(r"\[\]|\{\}")


def _json_field(path: str, metadata: dict[str, str], name: str) -> Any:
    """Metadata field ``name`` as JSON, refusing huge or deeply nested values (checked on the
    text, in C: walking a parsed 1 MB list in Python would take longer than loading a model)."""
    text, where = metadata[name], f"{path!r}: metadata field {name!r}"
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"{where} holds {len(text)} characters, over the limit {MAX_JSON_CHARS}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad JSON, too many digits, too deep
        raise ValueError(f"{where} is not valid JSON: {short(exc)}") from None
    if (classes := text.count('"class_name"')) > MAX_CLASSES:
        raise ValueError(
            f"{where} names {classes} objects (layers...), over the limit {MAX_CLASSES}"
        )
    brackets = NOT_BRACKETS.sub("", STRINGS.sub("", text))
    for _ in range(MAX_JSON_DEPTH):  # each pass removes one level of nesting
        brackets = INNERMOST.sub("", brackets)
    if brackets:
        raise ValueError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
    return value
