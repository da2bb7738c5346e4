"""What a checkpoint needs besides weights: architecture, compile settings, optimizer state,
RNG state and epoch.

All JSON (strings in the safetensors metadata) except the optimizer's arrays, stored as
tensors ``optimizer/<parameter>.<slot>``. Each JSON field must be an object within
limits checked on the text before anything is built: size (1 MiB), nesting depth (32) and
objects named by ``"class_name"`` (2048). Configs are rebuilt through the owning modules'
``get``/``deserialize`` (``{"class_name", "config"}`` dicts); nothing is imported by a name read
from a file, and whatever a corrupt config provokes there becomes a ``ValueError`` naming the
file and the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from portable_nn.backend import Backend, is_array, use_backend
from portable_nn.optimizers.base import trainable_parameters

from .tensors import Reader, reraise, short

OPTIMIZER = "optimizer/"  # name prefix of optimizer tensors
JSON_FIELDS = ("model_config", "compile_config", "optimizer_state", "training_state")
MAX_JSON_CHARS, MAX_JSON_DEPTH = 2**20, 32  # per field; a nested Sequential adds 3 levels
MAX_CLASSES = 2048  # objects named by "class_name" per field: building n layers costs O(n²) today
STRINGS, NOT_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"'), re.compile(r"[^][{}]+")
INNERMOST = re.compile(r"\[\]|\{\}")


def describe(model: Any, include_optimizer: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """The metadata fields of a model file, and the optimizer's arrays as ``optimizer/`` tensors."""
    fields = {"model_class": type(model).__name__, "model_config": json.dumps(model.get_config())}
    compile_config = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    if compile_config is not None:
        fields["compile_config"] = json.dumps(compile_config)
    optimizer = getattr(model, "optimizer", None)
    training: dict[str, Any] = {"epoch": int(getattr(model, "epoch", 0))}
    if hasattr(model, "get_rng_state"):
        training["rng"] = model.get_rng_state()
    fields["training_state"] = json.dumps(training)
    arrays: dict[str, Any] = {}
    if include_optimizer and optimizer is not None:
        full = optimizer.state_dict()
        arrays = {OPTIMIZER + k: v for k, v in full.items() if is_array(v)}
        fields["optimizer_state"] = json.dumps({k: v for k, v in full.items() if not is_array(v)})
    return fields, arrays


def read_fields(metadata: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The JSON fields of ``metadata`` (``model_config`` required), each an object within the
    limits, checked on the text, in C: walking a parsed 1 MB list in Python would take longer
    than loading a model."""
    if "model_config" not in metadata:
        raise ValueError("the metadata has no 'model_config'")
    fields = {}
    for name in (n for n in JSON_FIELDS if n in metadata):
        text, where = metadata[name], f"metadata field {name!r}"
        if len(text) > MAX_JSON_CHARS:
            raise ValueError(
                f"{where} holds {len(text)} characters, over the limit {MAX_JSON_CHARS}"
            )
        with reraise(f"{where} is not valid JSON", kinds=(ValueError, RecursionError)):
            fields[name] = json.loads(text)  # bad JSON, too many digits, too deep
        if (classes := text.count('"class_name"')) > MAX_CLASSES:
            raise ValueError(
                f"{where} names {classes} objects (layers...), over the limit {MAX_CLASSES}"
            )
        brackets = NOT_BRACKETS.sub("", STRINGS.sub("", text))
        for _ in range(MAX_JSON_DEPTH):  # each pass removes one level of nesting
            brackets = INNERMOST.sub("", brackets)
        if brackets:
            raise ValueError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
        if not isinstance(fields[name], dict):
            raise ValueError(f"{where} is not a JSON object")
    return fields


def build_model(model_class: str, config: dict[str, Any], target: Backend) -> Any:
    """Rebuild the architecture on ``target`` without consuming the global random stream."""
    from portable_nn import random as pnn_random
    from portable_nn.layers.base import layer_from_config

    generator = pnn_random.get_generator()
    saved = generator.get_state()
    try:
        with reraise("cannot rebuild the model from its config"), use_backend(target):
            model = layer_from_config(model_class, config)
    finally:
        generator.set_state(saved)
    if not callable(getattr(model, "compile", None)):
        raise ValueError(f"cannot rebuild the model: {short(repr(model_class))} is no model class")
    return model


def compile_model(model: Any, config: dict[str, Any], custom: dict[str, Any] | None) -> None:
    """Compile a freshly rebuilt ``model`` as saved (``model.compile_from_config``)."""
    hint = " (user functions go in load_model(..., custom_objects={name: fn}); or compile=False)"
    with reraise("cannot rebuild the compile settings", hint):
        model.compile_from_config(config, custom)


def load_optimizer_state(
    model: Any, scalars: dict[str, Any], reader: Reader, allow_nonfinite: bool
) -> None:
    """The optimizer's step (``scalars``) and slots (the ``optimizer/`` tensors, each checked to
    be ``<parameter>.<slot>`` before any is read: a corrupt file could hold thousands of empty
    ones), checked against the model's parameters; a never-stepped optimizer stays fresh."""
    params, slots = model.parameters(), getattr(model.optimizer, "slot_names", None)
    keys = [n[len(OPTIMIZER) :] for n in reader.names if n.startswith(OPTIMIZER)]
    for key in keys:
        param, _, slot = key.rpartition(".")
        if param not in params or (isinstance(slots, tuple) and slot not in slots):
            raise ValueError(
                f"the optimizer state does not fit: tensor {short(repr(OPTIMIZER + key))} is "
                f"no slot {slots} of a parameter"
            )
    state = {**scalars, **{k: reader.read(OPTIMIZER + k, allow_nonfinite) for k in keys}}
    if set(state) != {"step"} or state["step"] != 0:
        with reraise("the optimizer state does not fit"):
            model.optimizer.load_state_dict(state, params=trainable_parameters(model))


def restore_training(model: Any, training: dict[str, Any]) -> None:
    """Set the RNG state and the epoch saved in ``training_state``."""
    epoch = training.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"training_state epoch must be a count, got {short(repr(epoch))}")
    if "rng" in training:
        with reraise("bad RNG state in training_state"):
            model.set_rng_state(training["rng"])
    model.epoch = epoch
