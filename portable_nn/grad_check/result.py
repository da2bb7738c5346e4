"""What a gradient check found: per-array entries, extra checks, the readable report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` (``raise_exception=True``) with the readable report."""


@dataclass
class GradcheckEntry:
    """Comparison for one input or parameter: the element that came closest to failing."""

    name: str
    shape: tuple[int, ...]
    checked: int
    ok: bool = True
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    score: float = 0.0  # max |a - n| / (atol + rtol |n|); > 1 fails
    element: tuple[int, ...] | None = None
    analytic: float = 0.0
    numeric: float = 0.0

    def add(self, element: tuple[int, ...], a: float, n: float, atol: float, rtol: float) -> None:
        """Score one element (analytic ``a``, numeric ``n``); NaN counts as an infinite error.
        With ``atol = rtol = 0`` the score is the error itself and only exact equality passes."""
        error = abs(a - n)
        score = error / (atol + rtol * abs(n)) if atol + rtol > 0.0 else error
        if math.isnan(score):
            score = error = math.inf
        self.max_abs_error = max(self.max_abs_error, error)
        self.max_rel_error = max(self.max_rel_error, error / max(abs(n), atol, 1e-300))
        if self.element is None or score > self.score:
            self.score, self.element, self.analytic, self.numeric = score, element, a, n
        self.ok = self.score <= 1.0 if atol + rtol > 0.0 else self.score == 0.0

    def describe(self) -> str:
        if self.element is None:
            return f"{self.name}: no elements"
        return (
            f"{self.name}, element {self.element}: analytic {self.analytic:.6g}, "
            f"numeric {self.numeric:.6g}"
        )


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`; truthy when every comparison and extra check passed.

    ``max_rel_error`` uses ``|a - n| / max(|n|, atol)`` so zero gradients do not divide by zero.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst: str
    entries: list[GradcheckEntry] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, ok, detail)
    tolerances: dict[str, float] = field(default_factory=dict)

    @classmethod
    def collect(
        cls, entries: list[GradcheckEntry], checks: list[tuple[str, bool, str]], **tolerances: float
    ) -> GradcheckResult:
        """The result of ``entries`` and extra ``checks``: worst element and largest errors."""
        worst = max(entries, key=lambda e: e.score, default=None)
        return cls(
            ok=all(e.ok for e in entries) and all(ok for _, ok, _ in checks),
            max_abs_error=max((e.max_abs_error for e in entries), default=0.0),
            max_rel_error=max((e.max_rel_error for e in entries), default=0.0),
            worst="" if worst is None else worst.describe(),
            entries=entries,
            checks=checks,
            tolerances=tolerances,
        )

    def __bool__(self) -> bool:
        return self.ok

    def report(self) -> str:
        """Multi-line text: per input/parameter its worst element, then the extra checks."""
        settings = ", ".join(f"{k}={v:g}" for k, v in self.tolerances.items())
        lines = [f"gradcheck {'passed' if self.ok else 'FAILED'} ({settings})"]
        for e in self.entries:
            lines.append(
                f"  [{'ok' if e.ok else 'FAIL'}] {e.describe()}; max abs error "
                f"{e.max_abs_error:.3g}, max rel error {e.max_rel_error:.3g} "
                f"({e.checked}/{math.prod(e.shape)} elements of shape {e.shape})"
            )
        for what, ok, detail in self.checks:
            lines.append(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""))
        return "\n".join(lines)
