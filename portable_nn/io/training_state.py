"""What a checkpoint needs besides weights: compile settings, optimizer state, RNG state, epoch.

All JSON (strings in the safetensors metadata) except optimizer arrays, which
:mod:`portable_nn.io.checkpoint` stores as tensors. Configs are rebuilt through the owning
modules' ``get``/``deserialize`` (``{"class_name", "config"}`` dicts); nothing is imported by a
name read from a file, and whatever a corrupt config provokes there becomes a ``ValueError``
naming the file and the field.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from portable_nn.backend import Backend, is_array, make_backend, use_backend

from .tensors import short

# what constructors and ``get`` functions raise on a config they cannot use
CONFIG_ERRORS = (ArithmeticError, AttributeError, LookupError, TypeError, ValueError)


@contextlib.contextmanager
def config_errors(path: str, what: str, hint: str = "") -> Iterator[None]:
    """Report what rebuilding from a file's config raises as ``ValueError(path: what: ...)``."""
    try:
        yield
    except CONFIG_ERRORS as exc:
        raise ValueError(f"{path!r}: {what}: {type(exc).__name__}: {short(exc)}{hint}") from None


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


def optimizer_state(optimizer: Any) -> tuple[dict[str, Any], str]:
    """``optimizer.state_dict()`` as arrays (stored as tensors) and the JSON of the rest."""
    full = optimizer.state_dict()
    arrays = {k: v for k, v in full.items() if is_array(v)}
    return arrays, json.dumps({k: v for k, v in full.items() if k not in arrays})


def backend_for(target: Backend, dtype_names: list[str]) -> Backend:
    """``target`` with the default float dtype of the saved weights (float64 models stay so)."""
    kinds = set(dtype_names) & {"float16", "float32", "float64"}
    if len(kinds) == 1 and kinds <= {"float32", "float64"} and kinds != {target.dtype_name}:
        return make_backend(target.name, target.device, kinds.pop())
    return target


def build_model(path: str, model_class: str, config: Any, target: Backend) -> Any:
    """Rebuild the architecture on ``target`` without consuming the global random stream."""
    from portable_nn import random as pnn_random
    from portable_nn.layers.base import layer_from_config

    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError(f"{path!r}: model_config must be a dict with a 'layers' list")
    generator = pnn_random.get_generator()
    saved = generator.get_state()
    try:
        with config_errors(path, "cannot rebuild the model from its config"), use_backend(target):
            model = layer_from_config(model_class, config)
    finally:
        generator.set_state(saved)
    if not callable(getattr(model, "compile", None)):
        raise ValueError(f"{path!r}: model_class {short(repr(model_class))} is not a model")
    return model


def compile_model(path: str, model: Any, config: Any, custom: dict[str, Any] | None) -> bool:
    """Compile a freshly rebuilt ``model`` as saved; False when the file has no compile config."""
    from portable_nn import losses, metrics, optimizers

    if config is None:
        return False
    if not isinstance(config, dict):
        raise ValueError(f"{path!r}: compile_config must be a JSON object")
    hint = " (user functions go in load_model(..., custom_objects={name: fn}); or compile=False)"
    with config_errors(path, "cannot rebuild the compile settings", hint):
        loss, optimizer = config.get("loss"), config.get("optimizer")
        model.compile(
            loss=None if loss is None else losses.get(loss),
            optimizer=None if optimizer is None else optimizers.get(optimizer),
            metrics=[metrics.deserialize(m, custom) for m in config.get("metrics", [])],
        )
    return True


def load_optimizer_state(path: str, model: Any, scalars: Any, arrays: dict[str, Any]) -> None:
    """Checked against the model's parameters; a never-stepped optimizer stays fresh."""
    if not isinstance(scalars, dict):
        raise ValueError(f"{path!r}: optimizer_state must be a JSON object")
    state = {**scalars, **arrays}
    if set(state) != {"step"} or state["step"] != 0:
        with config_errors(path, "the optimizer state does not fit"):
            model.optimizer.load_state_dict(state, params=model.parameters())


def restore_training(path: str, model: Any, training: Any) -> None:
    """Set the RNG state and the epoch saved in ``training_state``."""
    training = {} if training is None else training
    if not isinstance(training, dict):
        raise ValueError(f"{path!r}: training_state must be a JSON object")
    epoch = training.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(
            f"{path!r}: training_state epoch must be a count, got {short(repr(epoch))}"
        )
    if "rng" in training:
        with config_errors(path, "bad RNG state in training_state"):
            model.set_rng_state(training["rng"])
    model.epoch = epoch
