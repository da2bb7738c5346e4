"""The training set of one ``fit``: inputs, encoded targets and sample weights on the training
backend, batched in scikit-learn's order (host index permutations, one device copy each)."""

from __future__ import annotations

from typing import Any

import scipy.sparse

from portable_nn.backend import make_backend

from ._placement import Placement

HOST = make_backend("numpy").xp  # array_api_compat.numpy: host index arrays for scikit-learn


class TrainingData:
    """``X`` (an array on the training backend, or a SciPy sparse matrix on the host, densified
    one batch at a time), ``y`` (n, outputs) and ``sample_weight`` (n,) or None on the training
    backend; ``labels``: host targets to stratify the early-stopping split (or None)."""

    def __init__(
        self, X: Any, y: Any, sample_weight: Any, placement: Placement, labels: Any = None
    ) -> None:
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.placement, self.labels = placement, labels
        self._order: tuple[Any, Any] | None = None  # (host permutation, its device copy)

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    def host_range(self) -> Any:
        """``0, ..., n - 1`` on the host, for scikit-learn's ``shuffle``/``train_test_split``."""
        return HOST.arange(self.n_samples)

    def stratify_labels(self) -> Any:
        return self.labels

    def batch(self, rows: slice, order: Any = None) -> tuple[Any, Any, Any]:
        """Rows ``rows`` of the data, or rows ``order[rows]`` of a host permutation."""
        if order is None:
            return self._dense(self.X[rows]), self.y[rows], _rows(self.sample_weight, rows)
        if self._order is None or self._order[0] is not order:
            self._order = (order, self.placement.inward(order))
        host, device = order[rows], self._order[1][rows]
        return self._take(host, device)

    def subset(self, host_index: Any) -> TrainingData:
        """The samples ``host_index`` as a new training set (the early-stopping split)."""
        device = self.placement.inward(host_index)
        x, y, w = self._take(host_index, device, dense=False)
        labels = None if self.labels is None else self.labels[host_index]
        return TrainingData(x, y, w, self.placement, labels)

    def whole(self) -> tuple[Any, Any, Any]:
        """Everything at once (L-BFGS), sparse input densified."""
        return self._dense(self.X), self.y, self.sample_weight

    def _take(self, host: Any, device: Any, dense: bool = True) -> tuple[Any, Any, Any]:
        xp = self.placement.xp
        if scipy.sparse.issparse(self.X):
            x = self.X[host]
            x = self._dense(x) if dense else x
        else:
            x = xp.take(self.X, device, axis=0)
        w = None if self.sample_weight is None else xp.take(self.sample_weight, device, axis=0)
        return x, xp.take(self.y, device, axis=0), w

    def _dense(self, x: Any) -> Any:
        if scipy.sparse.issparse(x):
            return self.placement.inward(x.toarray())
        return x


def _rows(array: Any, rows: slice) -> Any:
    return None if array is None else array[rows]


__all__ = ["HOST", "TrainingData"]
