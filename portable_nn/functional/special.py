"""The error function and the normal CDF, which the array API standard does not provide.

W. J. Cody's rational Chebyshev approximations (Math. Comp. 23 (1969) 631-637; the netlib
SPECFUN routine CALERF, 1990 coefficients), evaluated for ``t = |x|`` on three ranges:

* ``t <= 0.46875``:      ``erf(t)  = t * R1(t^2)``
* ``0.46875 < t <= 4``:  ``erfc(t) = exp(-t^2) * R2(t)``
* ``t > 4``:             ``erfc(t) = exp(-t^2) / t * (1/sqrt(pi) - R3(1/t^2) / t^2)``

Measured in float64 against ``math.erf``/``math.erfc`` on a dense grid of [-27, 27]: erf to
2.3e-16 absolute, erfc to 6e-14 relative down to 1e-300 (only subnormal results lose digits).
In float32 the error is that of float32 rounding (~1e-7 relative). Every branch is evaluated on an
argument clamped into its own range, so no branch overflows or divides by zero.

GELU runs in every training step, so it uses :func:`normal_cdf_fast`: the middle-range rational
alone over the whole line (half the work; 5e-12 relative error where it matters, see there).

Where the library behind ``x``'s namespace has its own erf/erfc (torch.special,
jax.scipy.special, cupyx.scipy.special, scipy.special for NumPy; see
:func:`portable_nn.backend.native`), erf, erfc and the normal CDFs call it instead: one fused kernel
rather than ~25 elementwise ones on a GPU. ``portable=True`` forces Cody's code, the reference the
tests compare the native kernels with (float64: ~1e-15 relative; float32: ~1e-6).
"""

from __future__ import annotations

from typing import Any

from array_api_compat import is_numpy_array, is_writeable_array

from portable_nn.backend import namespace_of, native

_A = (3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947)
_A4 = 0.185777706184603153
_B = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_C = (
    0.564188496988670089,
    8.88314979438837594,
    66.1191906371416295,
    298.635138197400131,
    881.95222124176909,
    1712.04761263407058,
    2051.07837782607147,
    1230.33935479799725,
)
_C8 = 2.15311535474403846e-8
_D = (
    15.7449261107098347,
    117.693950891312499,
    537.181101862009858,
    1621.38957456669019,
    3290.79923573345963,
    4362.61909014324716,
    3439.36767414372164,
    1230.33935480374942,
)
_P = (0.305326634961232344, 0.360344899949804439, 0.125781726111229246, 0.0160837851487422766)
_P45 = (6.58749161529837803e-4, 0.0163153871373020978)
_Q = (2.56852019228982242, 1.87295284992346047, 0.527905102951428412, 0.0605183413124413191)
_Q4 = 0.00233520497626869185
_INV_SQRT_PI = 0.56418958354775628695
_SMALL, _LARGE = 0.46875, 4.0
_INV_SQRT2 = 0.70710678118654752440


def _rational(
    z: Any, num_lead: float, num: tuple[float, ...], den: tuple[float, ...], inplace: bool = True
) -> Any:
    """``(num_lead z^n + num[0] z^(n-1) + ... + num[-1]) / (z^n + den[0] z^(n-1) + ... + den[-1])``
    in Cody's Horner form (numerator and denominator of equal degree).

    The Horner steps update two fresh temporaries in place where the namespace allows it
    (``is_writeable_array``: NumPy, CuPy, torch), else functionally (JAX); same results.
    """
    top = num_lead * z
    bottom = z + den[0]
    if not (inplace and is_writeable_array(top) and is_writeable_array(bottom)):
        top = (top + num[0]) * z
        bottom = bottom * z
        for a, b in zip(num[1:-1], den[1:-1]):
            top = (top + a) * z
            bottom = (bottom + b) * z
        return (top + num[-1]) / (bottom + den[-1])
    top += num[0]
    top *= z
    bottom *= z
    for a, b in zip(num[1:-1], den[1:-1]):
        top += a
        top *= z
        bottom += b
        bottom *= z
    top += num[-1]
    bottom += den[-1]
    top /= bottom
    return top


def _erf_small(t: Any) -> Any:
    """erf(t) for |t| <= 0.46875."""
    return t * _rational(t * t, _A4, _A, _B)


def _erfc_scaled(t: Any) -> Any:
    """exp(t^2) * erfc(t) for t >= 0.46875 (middle and tail ranges, chosen per element)."""
    xp = namespace_of(t)
    middle = _rational(xp.minimum(t, _LARGE), _C8, _C, _D)
    big = xp.maximum(t, _LARGE)
    z = 1.0 / (big * big)
    tail = (_INV_SQRT_PI - z * _rational(z, _P45[1], (*_P, _P45[0]), (*_Q, _Q4))) / big
    return xp.where(t <= _LARGE, middle, tail)


def erfc_nonnegative(t: Any) -> Any:
    """erfc(t) for t >= 0 with small *relative* error everywhere (the tail keeps its digits)."""
    xp = namespace_of(t)
    near = 1.0 - _erf_small(xp.minimum(t, _SMALL))
    far_t = xp.maximum(t, _SMALL)
    far = xp.exp(-(far_t * far_t)) * _erfc_scaled(far_t)
    return xp.where(t <= _SMALL, near, far)


def _native(x: Any, name: str, portable: bool) -> Any:
    """The namespace's own ``name`` kernel, or None (it has none, or ``portable`` asks)."""
    return None if portable else native(namespace_of(x), name)


def erf(x: Any, *, portable: bool = False) -> Any:
    """The error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-u^2) du``.

    Same shape, namespace, device and dtype as ``x``; absolute error <= 2.3e-16 in float64.
    """
    kernel = _native(x, "erf", portable)
    if kernel is not None:
        return kernel(x)
    xp = namespace_of(x)
    t = xp.abs(x)
    near = _erf_small(xp.minimum(t, _SMALL))
    return xp.sign(x) * xp.where(t <= _SMALL, near, 1.0 - erfc_nonnegative(t))


def erfc(x: Any, *, portable: bool = False) -> Any:
    """The complementary error function ``1 - erf(x)``, accurate in relative terms for x > 0."""
    kernel = _native(x, "erfc", portable)
    if kernel is not None:
        return kernel(x)
    xp = namespace_of(x)
    tail = erfc_nonnegative(xp.abs(x))
    return xp.where(x < 0, 2.0 - tail, tail)


def normal_cdf(x: Any, *, portable: bool = False) -> Any:
    """Phi(x) = P(N(0,1) <= x) = erfc(-x / sqrt 2) / 2, accurate in relative terms for x << 0
    too (float64: <= 5e-13, erfc's error plus the rounding of x / sqrt 2)."""
    kernel = _native(x, "erfc", portable)
    if kernel is not None:
        return 0.5 * kernel(-(x * _INV_SQRT2))  # the argument rounds as in the portable path
    xp = namespace_of(x)
    half_tail = 0.5 * erfc_nonnegative(xp.abs(x) * _INV_SQRT2)
    return xp.where(x < 0, half_tail, 1.0 - half_tail)


def normal_cdf_fast(x: Any, *, portable: bool = False) -> Any:
    """Phi(x) for GELU: :func:`normal_cdf` where the namespace has its own erfc (one kernel
    already, nothing to trade; but not for NumPy float32, where the portable code is faster than
    SciPy's), else (or with ``portable``) Cody's middle-range erfc
    approximation alone (one rational instead of three): ``erfc(t) = exp(-t^2) R2(t)`` for every
    ``t = |x|/sqrt 2`` (clamped at 28, where exp(-t^2) is 0 in float64).

    Relative error of the portable Phi in float64 (against ``math.erfc``): <= 5e-12 for x >= -8.5,
    <= 3.3e-10 for x >= -14 and <= 8e-8 below, where Phi(x) < 1e-44; as erf, absolute error
    <= 5e-12 everywhere.
    """
    xp = namespace_of(x)
    # SciPy's float32 erfc runs scalar float64 code: slower here than NumPy's float32 loops
    if not (is_numpy_array(x) and x.dtype == xp.float32) and _native(x, "erfc", portable):
        return normal_cdf(x)
    t = xp.minimum(xp.abs(x) * _INV_SQRT2, 28.0)
    half_tail = (0.5 * xp.exp(-(t * t))) * _rational(t, _C8, _C, _D)
    return xp.where(x < 0, half_tail, 1.0 - half_tail)


__all__ = ["erf", "erfc", "erfc_nonnegative", "normal_cdf", "normal_cdf_fast"]
