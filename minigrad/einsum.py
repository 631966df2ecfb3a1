"""einsum: Einstein summation over tensors, differentiable (torch.einsum).

    mg.einsum("ij,jk->ik", a, b)         # matmul
    mg.einsum("bij,bjk->bik", a, b)      # batched matmul
    mg.einsum("ii->", a)                 # trace
    mg.einsum("i,j->ij", u, v)           # outer product
    mg.einsum("...ij->...ji", a)         # transpose of a batch

The equation is first made explicit (``...`` replaced by letters, the implicit output of
an equation without ``->`` spelled out: the ``...`` dims, then the letters that appear once,
in alphabetical order), and the op computes it with NumPy's/CuPy's einsum. The gradient of
an operand is itself an einsum: the output gradient contracted with the other operands
onto the operand's letters; letters only that operand has (summed away in the forward)
are broadcast back, and a repeated letter (a diagonal, as in ``ii->``) is written back onto
the diagonal. As in torch, a label of size 1 broadcasts against the same label elsewhere,
and an output without ``...`` sums over the ``...`` dims.
"""
from __future__ import annotations

import string

from .autograd import Function, register
from .errors import ArgumentError, DTypeError, ShapeError

_LETTERS = frozenset(string.ascii_letters)


def _split_operand(term: str, ndim: int, index: int):
    """(letters before ..., letters after ..., number of ... dims) of one operand."""
    if term.count("...") > 1 or "." in term.replace("...", ""):
        raise ArgumentError(f"einsum: operand {index} subscripts {term!r} may hold one '...' "
                            f"and letters only")
    head, dots, tail = term.partition("...")
    for ch in head + tail:
        if ch not in _LETTERS:
            raise ArgumentError(f"einsum: subscript {ch!r} of operand {index} is not a letter "
                                f"(a-z, A-Z)")
    n_letters = len(head) + len(tail)
    if (not dots and n_letters != ndim) or (dots and n_letters > ndim):
        raise ShapeError(f"einsum: operand {index} has {ndim} dims but subscripts {term!r} "
                         f"name {n_letters}" + (" (and '...')" if dots else ""))
    return head, tail, (ndim - n_letters if dots else 0)


def explicit(equation: str, shapes) -> tuple[list[str], str, dict]:
    """The inputs' and output's subscripts with every dim a letter, and each letter's size
    (the largest, size-1 dims broadcasting)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ArgumentError(f"einsum: the equation {equation!r} names {len(terms)} operands, "
                            f"got {len(shapes)} tensors")
    parts = [_split_operand(t, len(s), i) for i, (t, s) in enumerate(zip(terms, shapes))]
    n_dots = max((p[2] for p in parts), default=0)
    spare = sorted(_LETTERS - set(eq))
    dots = "".join(spare[:n_dots])
    inputs = [head + dots[n_dots - k:] + tail for head, tail, k in parts]
    sizes = {}
    for i, (sub, shape) in enumerate(zip(inputs, shapes)):
        for ch, n in zip(sub, shape):
            seen = sizes.get(ch)
            if seen is not None and seen != n and 1 not in (seen, n):
                raise ShapeError(f"einsum: subscript {ch!r} has size {seen} in one operand and "
                                 f"{n} in operand {i} (shape {tuple(shape)})")
            sizes[ch] = n if seen in (None, 1) else seen
    if arrow:
        head, has_dots, tail = rhs.partition("...")
        for ch in head + tail:
            if ch not in sizes:
                raise ArgumentError(f"einsum: output subscript {ch!r} does not appear in the "
                                    f"inputs of {equation!r}")
        output = head + (dots if has_dots else "") + tail
        if len(set(output)) != len(output):
            raise ArgumentError(f"einsum: an output subscript appears more than once in "
                                f"{equation!r}")
    else:
        counts = {}
        for sub in inputs:
            for ch in sub:
                counts[ch] = counts.get(ch, 0) + 1
        output = dots + "".join(sorted(ch for ch, c in counts.items()
                                       if c == 1 and ch not in dots))
    return inputs, output, sizes


def einsum(equation, *operands):
    """torch.einsum(equation, *operands) (or one list of operands), differentiable."""
    from .tensor import Tensor
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise ArgumentError(f"einsum: the first argument must be the equation string, got "
                            f"{type(equation).__name__}")
    if not operands or not all(isinstance(t, Tensor) for t in operands):
        raise ArgumentError("einsum: expected one or more Tensors after the equation")
    dtypes = {t.array.dtype for t in operands}
    if len(dtypes) > 1:
        raise DTypeError(f"einsum: operands must share one dtype, got "
                         f"{sorted(str(d) for d in dtypes)}; convert them (.float() / .double())")
    inputs, output, sizes = explicit(equation, [t.shape for t in operands])
    return Einsum.apply(*operands, inputs=tuple(inputs), output=output, sizes=sizes)


@register
class Einsum(Function):
    # out = einsum(inputs -> output);  d out / d operand i = einsum(output, other inputs ->
    # operand i's letters) applied to the output gradient, broadcast over the letters only
    # operand i has and written onto the diagonal where operand i repeats a letter
    def forward(self, *arrays, inputs, output, sizes):
        self.arrays, self.subs, self.output, self.sizes = arrays, inputs, output, sizes
        return self.xp.einsum(",".join(inputs) + "->" + output, *arrays,
                              optimize=len(arrays) > 1)

    def backward(self, g):
        return tuple(self._grad(i, g) if need else None for i, need in enumerate(self.needs_grad))

    def _grad(self, i, g):
        xp, sub = self.xp, self.subs[i]
        others = [j for j in range(len(self.subs)) if j != i]
        reachable = set(self.output).union(*(self.subs[j] for j in others))
        letters = "".join(dict.fromkeys(sub))               # unique, in order
        target = "".join(ch for ch in letters if ch in reachable)
        eq = ",".join([self.output] + [self.subs[j] for j in others]) + "->" + target
        r = xp.einsum(eq, g, *(self.arrays[j] for j in others), optimize=bool(others))
        r = r.reshape([self.sizes[ch] if ch in reachable else 1 for ch in letters])
        r = xp.broadcast_to(r, [self.sizes[ch] for ch in letters])
        if len(letters) == len(sub):
            return r
        # a repeated letter: only the diagonal entries took part in the forward
        grad = xp.zeros([self.sizes[ch] for ch in sub], dtype=g.dtype)
        where = []
        for ch in sub:
            shape = [1] * len(letters)
            shape[letters.index(ch)] = self.sizes[ch]
            where.append(xp.arange(self.sizes[ch]).reshape(shape))
        grad[tuple(where)] = r
        return grad
