"""Native kernels of a namespace for what the array API standard lacks (erf, erfc, convolution,
scatter-add).

The portable versions in :mod:`portable_nn.functional` stay the reference; where the library
behind a namespace has its own kernel (one fused launch instead of ~25 elementwise ones on a GPU,
oneDNN/cuDNN/XLA convolutions instead of im2col), :func:`native` and :func:`convolution` return
it and the functional code or the layer calls it instead. Tests compare the two paths on every
backend that has one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import array_api_compat

_KERNELS = ("erf", "erfc")


@functools.cache
def native(xp: ModuleType, name: str) -> Callable[[Any], Any] | None:
    """``xp``'s library kernel ``name`` (``"erf"`` or ``"erfc"``), or None when it has none
    (NumPy without SciPy, array-api-strict): torch.special, jax.scipy.special,
    cupyx.scipy.special, scipy.special for NumPy."""
    if name not in _KERNELS:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(_KERNELS)}")
    try:
        if array_api_compat.is_torch_namespace(xp):
            import torch

            return getattr(torch.special, name)
        if array_api_compat.is_jax_namespace(xp):
            import jax.scipy.special

            return getattr(jax.scipy.special, name)
        if array_api_compat.is_cupy_namespace(xp):
            import cupyx.scipy.special

            return getattr(cupyx.scipy.special, name)
        if array_api_compat.is_numpy_namespace(xp):
            import scipy.special

            return getattr(scipy.special, name)
    except ImportError:
        return None
    return None


class Convolution(NamedTuple):
    """A library's own 2-D convolution with the signatures of
    :func:`portable_nn.functional.convolution.conv2d` and ``conv2d_grad``: channels-last ``x``
    (N, H, W, C), weights (kh, kw, C/groups, F), ``padding`` ((top, bottom), (left, right)).
    What ``forward`` returns second (the input as the kernel's backward takes it) replaces the
    im2col windows as ``backward``'s ``cols``."""

    forward: Callable[..., tuple[Any, Any]]
    backward: Callable[..., tuple[Any, Any]]


@functools.cache
def convolution(xp: ModuleType) -> Convolution | None:
    """``xp``'s library convolution (torch: ``conv2d`` + ``aten.convolution_backward``; JAX:
    ``lax.conv_general_dilated`` and its VJP), or None (NumPy, CuPy, array-api-strict: the
    portable im2col path is the default there)."""
    if array_api_compat.is_torch_namespace(xp):
        return _torch_convolution()
    if array_api_compat.is_jax_namespace(xp):
        return _jax_convolution()
    return None


def _torch_convolution() -> Convolution:
    import torch

    functional, conv_backward = torch.nn.functional, torch.ops.aten.convolution_backward

    def own_padding(padding: Any) -> list[int] | None:
        """``[top, left]`` when ``conv2d`` can pad itself (symmetric padding), else None."""
        (top, bottom), (left, right) = padding
        return [top, left] if top == bottom and left == right else None

    def forward(x: Any, weight: Any, strides: Any, padding: Any, dilation: Any, groups: int) -> Any:
        x, pad = x.permute(0, 3, 1, 2), own_padding(padding)  # torch's (N, C, H, W) view
        if pad is None:  # Keras's asymmetric "same": a padded copy first
            (top, bottom), (left, right) = padding
            x, pad = functional.pad(x, (left, right, top, bottom)), [0, 0]
        y = functional.conv2d(x, weight.permute(3, 2, 0, 1), None, strides, pad, dilation, groups)
        return y.permute(0, 2, 3, 1), x

    def backward(
        dy: Any, x: Any, weight: Any, x_shape: Any, strides: Any, padding: Any, dilation: Any,
        groups: int, input_grad: bool = True,
    ) -> tuple[Any, Any]:  # fmt: skip
        pad = own_padding(padding)
        dx, dw, _ = conv_backward(
            dy.permute(0, 3, 1, 2), x, weight.permute(3, 2, 0, 1), None, list(strides),
            pad or [0, 0], list(dilation), False, [0, 0], groups, [input_grad, True, False],
        )  # fmt: skip
        dw = dw.permute(2, 3, 1, 0).contiguous()
        if not input_grad:
            return None, dw
        if pad is None:  # drop the rows and columns padded before the kernel
            (top, _), (left, _) = padding
            dx = dx[:, :, top : top + x_shape[1], left : left + x_shape[2]]
        return dx.permute(0, 2, 3, 1), dw

    return Convolution(forward, backward)


def _jax_convolution() -> Convolution:
    import jax

    def conv(x: Any, weight: Any, strides: Any, padding: Any, dilation: Any, groups: int) -> Any:
        return jax.lax.conv_general_dilated(
            x, weight, strides, padding, rhs_dilation=dilation, feature_group_count=groups,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )  # fmt: skip

    def forward(x: Any, weight: Any, strides: Any, padding: Any, dilation: Any, groups: int) -> Any:
        return conv(x, weight, strides, padding, dilation, groups), x

    def backward(
        dy: Any, x: Any, weight: Any, x_shape: Any, strides: Any, padding: Any, dilation: Any,
        groups: int, input_grad: bool = True,
    ) -> tuple[Any, Any]:  # fmt: skip
        if not input_grad:
            _, vjp = jax.vjp(lambda w: conv(x, w, strides, padding, dilation, groups), weight)
            return None, vjp(dy)[0]
        _, vjp = jax.vjp(lambda a, w: conv(a, w, strides, padding, dilation, groups), x, weight)
        return vjp(dy)

    return Convolution(forward, backward)


@functools.cache
def scatter_add(xp: ModuleType) -> Callable[[Any, Any, int], Any] | None:
    """``add_rows(indices, values, n) -> out`` of shape ``(n, d)`` with ``out[v] = sum of
    values[k] over the k where indices[k] == v`` (repeats accumulate), or None (array-api-strict:
    the portable one-hot matmul is the default there). ``indices``: (N,) integers in ``[0, n)``;
    ``values``: (N, d). NumPy: ``np.add.at`` over the flat cells (its fast 1-D path, 6x faster
    than on rows), torch: ``index_add``, JAX: ``.at[].add``, CuPy: ``cupyx.scatter_add``."""
    if array_api_compat.is_numpy_namespace(xp):
        import numpy as np

        def add_rows(indices: Any, values: Any, n: int) -> Any:
            d = values.shape[1]
            out = np.zeros(n * d, dtype=values.dtype)
            cells = np.asarray(indices, dtype=np.intp)[:, None] * d + np.arange(d)
            np.add.at(out, cells.ravel(), np.ravel(values))  # out[x[k] * d + j] += values[k, j]
            return out.reshape(n, d)

        return add_rows
    if array_api_compat.is_torch_namespace(xp):
        import torch

        def torch_rows(indices: Any, values: Any, n: int) -> Any:
            out = torch.zeros((n, values.shape[1]), dtype=values.dtype, device=values.device)
            return out.index_add_(0, indices, values)

        return torch_rows
    if array_api_compat.is_jax_namespace(xp):
        import jax.numpy as jnp

        def jax_rows(indices: Any, values: Any, n: int) -> Any:  # zeros on values' device
            return jnp.zeros_like(values, shape=(n, values.shape[1])).at[indices].add(values)

        return jax_rows
    if array_api_compat.is_cupy_namespace(xp):
        import cupy
        import cupyx

        def cupy_rows(indices: Any, values: Any, n: int) -> Any:
            out = cupy.zeros((n, values.shape[1]), dtype=values.dtype)
            cupyx.scatter_add(out, indices, values)
            return out

        return cupy_rows
    return None


__all__ = ["Convolution", "convolution", "native", "scatter_add"]
