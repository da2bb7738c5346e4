"""What a checkpoint needs besides weights: compile settings, optimizer state, RNG state, epoch.

Everything here is JSON (stored as strings in the safetensors metadata) except optimizer
arrays, which :mod:`portable_nn.io.checkpoint` stores as tensors. Configs are rebuilt through
the owning modules' ``get``/``serialize`` functions (``{"class_name", "config"}`` dicts);
nothing is ever imported by a name read from a file.
"""

from __future__ import annotations

import json
from typing import Any

from portable_nn.backend import Backend, is_array, make_backend, use_backend

from .atomic import PathLike


# -- saving -----------------------------------------------------------------------------------
def describe(model: Any) -> dict[str, str]:
    """Metadata: ``model_class``, JSON ``compile_config`` (if compiled), ``training_state``."""
    from portable_nn import losses, metrics, optimizers

    fields = {"model_class": type(model).__name__}
    if getattr(model, "loss", None) is not None or getattr(model, "optimizer", None) is not None:
        compiled = {
            "loss": None if model.loss is None else losses.serialize(model.loss),
            "optimizer": None if model.optimizer is None else optimizers.serialize(model.optimizer),
            "metrics": [metrics.serialize(m) for m in getattr(model, "compiled_metrics", [])],
        }
        fields["compile_config"] = json.dumps(compiled)
    state: dict[str, Any] = {"epoch": int(getattr(model, "epoch", 0))}
    if hasattr(model, "get_rng_state"):
        state["rng"] = model.get_rng_state()
    fields["training_state"] = json.dumps(state)
    return fields


def optimizer_state(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into arrays (stored as tensors) and JSON scalars."""
    arrays, scalars = {}, {}
    for key, value in optimizer.state_dict().items():
        if is_array(value):
            arrays[key] = value
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[key] = value
        else:
            raise TypeError(
                f"optimizer state entry {key!r} is a {type(value).__name__}, "
                "neither an array nor a JSON scalar"
            )
    return arrays, scalars


# -- loading ----------------------------------------------------------------------------------
def backend_for(target: Backend, weights: dict[str, Any]) -> Backend:
    """``target`` with the default float dtype of the saved weights (float64 models stay so)."""
    kinds = {a.dtype.name for a in weights.values() if a.dtype.kind == "f"}
    if len(kinds) == 1 and kinds <= {"float32", "float64"} and kinds != {target.dtype_name}:
        return make_backend(target.name, target.device, kinds.pop())
    return target


def build_model(path: PathLike, model_class: str, config: Any, target: Backend) -> Any:
    """Rebuild the architecture on ``target`` without consuming the global random stream."""
    from portable_nn import random as pnn_random
    from portable_nn.layers.base import layer_from_config

    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError(f"{str(path)!r}: model_config must be a dict with a 'layers' list")
    generator = pnn_random.get_generator()
    saved = generator.get_state()
    try:
        with use_backend(target):
            return layer_from_config(model_class, config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{str(path)!r}: cannot rebuild the model from its config: {exc}"
        ) from None
    finally:
        generator.set_state(saved)


def restore(
    path: PathLike,
    model: Any,
    fields: dict[str, Any],
    optimizer_arrays: dict[str, Any],
    compile: bool,
    custom_objects: dict[str, Any] | None,
) -> None:
    """Compile a freshly rebuilt ``model`` as saved, load the optimizer state, RNG state, epoch.

    Raises ``ValueError`` naming the field for anything that does not fit.
    """
    compiled = _rebuild_compile(path, fields.get("compile_config"), custom_objects)
    training = fields.get("training_state") or {}
    if not isinstance(training, dict):
        raise ValueError(f"{str(path)!r}: training_state must be a JSON object")
    if compile and compiled is not None:
        model.compile(**compiled)
        if "optimizer_state" in fields:
            state = {**_scalars(path, fields["optimizer_state"]), **optimizer_arrays}
            _load_optimizer_state(path, model, state)
    epoch = training.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"{str(path)!r}: training_state epoch must be a count, got {epoch!r}")
    if "rng" in training:
        try:
            model.set_rng_state(training["rng"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{str(path)!r}: bad RNG state in training_state: {exc}") from None
    model.epoch = epoch


def _load_optimizer_state(path: PathLike, model: Any, state: dict[str, Any]) -> None:
    """Checked against the model's parameters now; a never-stepped optimizer stays fresh."""
    if set(state) == {"step"} and state["step"] == 0:
        return
    try:
        model.optimizer.load_state_dict(state, params=model.parameters())
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{str(path)!r}: the optimizer state does not fit: {exc}") from None


def _scalars(path: PathLike, scalars: Any) -> dict[str, Any]:
    if not isinstance(scalars, dict):
        raise ValueError(f"{str(path)!r}: optimizer_state must be a JSON object")
    return scalars


def _rebuild_compile(
    path: PathLike, config: Any, custom_objects: dict[str, Any] | None
) -> dict[str, Any] | None:
    from portable_nn import losses, metrics, optimizers

    if config is None:
        return None
    if not isinstance(config, dict):
        raise ValueError(f"{str(path)!r}: compile_config must be a JSON object")
    try:
        return {
            "loss": None if config.get("loss") is None else losses.get(config["loss"]),
            "optimizer": (
                None if config.get("optimizer") is None else optimizers.get(config["optimizer"])
            ),
            "metrics": [metrics.deserialize(m, custom_objects) for m in config.get("metrics", [])],
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{str(path)!r}: cannot rebuild the compile settings: {exc} (user functions go in "
            "load_model(..., custom_objects={name: fn}); or pass compile=False)"
        ) from None
