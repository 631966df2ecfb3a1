"""torch.utils.data's everyday names: ``Dataset``, ``TensorDataset``, ``Subset``,
``random_split`` and ``DataLoader`` (batching with torch's default collation, shuffling
from minigrad's seeded generator, ``drop_last``, ``collate_fn``).

    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
    for xb, yb in loader: ...

Batches are made in the calling thread: ``num_workers`` and ``pin_memory`` are accepted
and change nothing but speed (the batches are the ones torch makes; the shuffled order is
minigrad's generator's, not torch's).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from ..errors import ArgumentError, ShapeError
from ..shape_ops import stack
from ..tensor import Tensor


class Dataset:
    """A map-style dataset: subclass it with ``__getitem__(i)`` and ``__len__()``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


class TensorDataset(Dataset):
    """Samples are the i-th rows of each tensor (all of one length): (x[i], y[i])."""

    def __init__(self, *tensors):
        if not tensors:
            raise ArgumentError("TensorDataset: give at least one tensor")
        n = tensors[0].shape[0] if tensors[0].ndim else None
        if any(t.ndim == 0 or t.shape[0] != n for t in tensors):
            raise ShapeError(f"TensorDataset: size mismatch between tensors (first dims "
                             f"{[tuple(t.shape)[:1] for t in tensors]}); every tensor needs "
                             f"the same number of rows")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1,
    the remainder spread one by one from the first), in a random order from minigrad's
    seeded generator."""
    if generator is not None:
        raise ArgumentError("random_split: generator= is not supported; seed with "
                            "mg.manual_seed(n)")
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(v, float) for v in lengths) and math.isclose(sum(lengths), 1):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ArgumentError(f"random_split: sum of input lengths ({sum(lengths)}) does not "
                            f"equal the length of the input dataset ({n})")
    order = backend.rng("cpu").permutation(n).tolist()
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, order[start:start + length]))
        start += length
    return out


def default_collate(batch):
    """torch's default collation: tensors stacked (a new dim 0), NumPy arrays too,
    Python ints to int64 and floats to float64 tensors, bools to bool; tuples, lists and
    dicts collated field by field; strings kept as a list."""
    first = batch[0]
    if isinstance(first, Tensor):
        return stack(batch)
    if isinstance(first, np.ndarray):
        return stack([Tensor(np.asarray(b)) for b in batch])
    if isinstance(first, (bool, np.bool_)):
        return Tensor(np.asarray(batch, dtype=bool))
    if isinstance(first, numbers.Integral):
        return Tensor(np.asarray(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor(np.asarray(batch, dtype=np.float64))
    if isinstance(first, str):
        return list(batch)
    if isinstance(first, dict):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batch):
            raise ShapeError("default_collate: each element in the batch should be of equal "
                             "size")
        fields = [default_collate(list(f)) for f in zip(*batch)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise ArgumentError(f"default_collate: batch must contain tensors, arrays, numbers, "
                        f"strings, dicts or lists, got {type(first).__name__}; pass "
                        f"collate_fn=")


class DataLoader:
    """Batches of ``dataset`` (``batch_size`` samples, collated); ``shuffle=True`` draws a
    new order each pass; ``drop_last`` drops a short last batch; ``batch_size=None``
    yields the samples themselves."""

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False,
                 timeout=0, worker_init_fn=None, generator=None, **kwargs):
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
                batch_size, numbers.Integral) or batch_size < 1):
            raise ArgumentError(f"DataLoader: batch_size should be a positive integer value, "
                                f"got {batch_size!r}")
        if sampler is not None or batch_sampler is not None or generator is not None:
            raise ArgumentError("DataLoader: sampler=, batch_sampler= and generator= are not "
                                "supported; use shuffle=True (seeded by mg.manual_seed), or "
                                "index the dataset yourself")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, bool(shuffle)
        self.drop_last, self.num_workers, self.pin_memory = drop_last, num_workers, pin_memory
        self.collate_fn = default_collate if collate_fn is None else collate_fn

    def _order(self):
        n = len(self.dataset)
        return backend.rng("cpu").permutation(n).tolist() if self.shuffle else range(n)

    def __iter__(self):
        order = self._order()
        if self.batch_size is None:
            for i in order:
                yield self.dataset[i]
            return
        order = list(order)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            if len(chunk) < self.batch_size and self.drop_last:
                return
            yield self.collate_fn([self.dataset[i] for i in chunk])

    def __len__(self):
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
