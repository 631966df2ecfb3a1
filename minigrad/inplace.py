"""In-place ops (``+=``, ``add_``, ``x[i] = v``, ``fill_``, ...) under PyTorch's autograd rules.

Every in-place op is written as its out-of-place twin, ``compute(old) -> new``, and
``apply_inplace`` decides what writing ``new`` into the tensor's memory means:

* no graph involved (grad mode off, as in ``with mg.no_grad():`` or an optimizer step,
  or nothing requires grad): the values are written, the version counter goes up;
* a leaf that requires grad (a parameter), or a view of one: PyTorch's error, with the
  way out (``no_grad()``, ``.data``, or the out-of-place form);
* otherwise the op joins the graph: the tensor's old value becomes the input of the
  recorded op and the tensor itself its output (``y = x * 2; y[0] = 5`` gives
  dy/dx = [0, 2, 2, ...]). Through a view, the base's graph is rewired the same way
  (the view's elements replaced by the new values) and the view re-derived from it.

Ops that saved a tensor for backward check its version (autograd.check_saved_versions),
so ``y = x.exp(); y.add_(1); y.sum().backward()`` raises instead of using the new values.
"""
from __future__ import annotations

import math

from . import autograd, backend, dtypes, ops
from . import tensor as T       # (a cycle: tensor.py imports this module; used at call time)
from .autograd import Function, register
from .errors import DeviceError, DTypeError, GraphError, IndexRangeError, ShapeError


@register
class SetItem(Function):
    # out = x with out[index] = value:  dx = g with g[index] = 0,  dvalue = g[index]
    # (summed back to value's shape by the engine when value was broadcast). An index
    # array may name one place twice: the last write wins, so only it gets the gradient.
    saved_inputs = ()
    saves_output = False

    def forward(self, x, value, index):
        self.index, self.value_shape, self.won = index, value.shape, None
        out = x.copy()
        needs = getattr(self, "needs_grad", None)
        if needs is None or not needs[1] or not _has_index_array(index):
            out[index] = value
            return out
        # value needs a gradient and an index array may repeat a place: find the one
        # element of value that lands on each place (the last on the CPU; CuPy picks one),
        # and write exactly those, so that forward and backward agree on every device
        xp = self.xp
        target = x[index].shape
        ids = xp.arange(math.prod(target)).reshape(target)
        probe = xp.full(x.shape, -1, dtype=ids.dtype)
        probe[index] = ids
        hit = probe >= 0
        extra = max(value.ndim - len(target), 0)          # leading 1s assignment drops
        flat = xp.broadcast_to(value.reshape(value.shape[extra:]), target).reshape(-1)
        out[hit] = flat[probe[hit]]
        self.won = probe[index] == ids
        return out

    def backward(self, g):
        gx = gv = None
        if self.needs_grad[0]:
            gx = g.copy()
            gx[self.index] = 0
        if self.needs_grad[1]:
            gv = g[self.index]
            if self.won is not None:
                gv = gv * self.won
            extra = len(self.value_shape) - gv.ndim
            if extra > 0:      # value had leading 1s that assignment drops
                gv = gv.reshape((1,) * extra + gv.shape)
        return gx, gv


def _has_index_array(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(getattr(i, "dtype", None) is not None and i.dtype.kind in "iu" for i in items)


def apply_inplace(t, name, compute, values=(), saves_old=False, raw=None, unsafe_cast=False):
    """Write ``compute(old)`` (a Tensor: the op's out-of-place result) into ``t``'s memory.

    ``values``: the other operands (tensors among them may require grad). ``saves_old``:
    compute's op keeps its input's array for backward (mul, div, pow), so it gets a copy
    of the old values. ``raw(array)``, when given, does the whole write on the raw array
    when no graph is involved (a fill, a random draw). ``unsafe_cast``: any dtype may be
    written (copy_ and fill_, as in torch); otherwise only a same-or-lower category."""
    view = t._view
    graph = autograd._grad_enabled and (
        t.requires_grad or any(getattr(v, "requires_grad", False) for v in values)
        or (view is not None and autograd.view_chain(t)[0].requires_grad))
    if _self_overlapping(t.array):
        raise GraphError(f"{name}: unsupported operation: more than one element of the "
                         f"written-to tensor (shape {t.shape}) refers to a single memory "
                         f"location (an expand()ed tensor or a read-only array); clone() it "
                         f"first: x = x.clone()")
    if not graph:
        if raw is not None:
            raw(t.array)
        else:
            prev, autograd._grad_enabled = autograd._grad_enabled, False
            try:
                new = compute(t)
            finally:
                autograd._grad_enabled = prev
            _write(t, name, new, unsafe_cast)
        t._counter().bump()
        return t
    if view is not None and view[3] != t._vc.gen:
        t._refresh_view()               # its base was rewired since: re-derive it first
    _check_may_record(t, name)
    vc = t._counter()
    stand_in = t._graph_stand_in() if t._ctx is not None else None
    old = type(t)._make(t.array.copy() if saves_old else t.array, t.requires_grad)
    old._ctx, old._stand_in = t._ctx, stand_in
    # What compute's op keeps of t is a copy (saves_old) or its own result, never t's
    # memory, so its backward need not check t's version -- unless another operand is t
    # itself or a view of it (y.mul_(y)): then it kept t's memory, and the write below
    # must show as a modification (torch raises at backward too).
    aliased = any(getattr(v, "_vc", None) is vc for v in values)
    new = compute(old)
    _check_result(t, name, new, unsafe_cast)
    if not aliased and new._ctx is not None:
        new._ctx.own_counter = vc
    if new.dtype != t.dtype:
        new = new.astype(t.dtype)
    vc.bump()
    backend.get_array_module(t.array).copyto(t.array, new.array)
    if view is None:
        _rebase(t, new)
    else:
        _rebase_through_view(t, new)
    return t


def _self_overlapping(a):
    """Whether writing to ``a`` is refused: read-only (NumPy's broadcast views), or several
    elements on one memory location (a stride 0 on a dim longer than 1: expand())."""
    if not getattr(a.flags, "writeable", True):       # (CuPy has no read-only arrays)
        return True
    return any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape))


def _check_may_record(t, name):
    """PyTorch's refusals: in-place on a leaf that requires grad, on a view of one, or on
    a view made under no_grad of a tensor that requires grad."""
    advice = ("To update it without recording (an optimizer step, initialisation), do it "
              "inside `with mg.no_grad():` or on its .data (p.data.add_(...)); to compute "
              "a new value, write the out-of-place form (w = w + 1, w = w.clamp(...)).")
    if t.requires_grad and t._ctx is None:
        raise GraphError(f"{name}: a leaf Variable that requires grad is being used in an "
                         f"in-place operation (a tensor of shape {t.shape} created with "
                         f"requires_grad=True, or a Parameter). {advice}")
    if t._view is not None:
        base = autograd.view_chain(t)[0]
        if base.requires_grad and base._ctx is None:
            raise GraphError(f"{name}: a view of a leaf Variable that requires grad is being "
                             f"used in an in-place operation (the view has shape {t.shape}, "
                             f"its base {base.shape}). {advice}")
        if not t._view[4] or (base.requires_grad and not t.requires_grad):
            raise GraphError(f"{name}: a view was created in no_grad mode and is being "
                             f"modified in place with grad mode enabled (view of shape "
                             f"{t.shape}); create the view and modify it both inside "
                             f"no_grad(), or both outside it")


def _check_result(t, name, new, unsafe_cast):
    if new.shape != t.shape:
        raise ShapeError(f"{name}: output with shape {t.shape} doesn't match the broadcast "
                         f"shape {new.shape} (an in-place op cannot grow its tensor); write "
                         f"the out-of-place form: x = x + y")
    if not unsafe_cast and not dtypes.can_cast(new.dtype, t.dtype):
        raise DTypeError(f"{name}: result type {new.dtype} can't be cast to the desired "
                         f"output type {t.dtype} (the tensor written in place); convert "
                         f"first (x = x.float()) or write the out-of-place form: x = x + y")


def _write(t, name, new, unsafe_cast):
    _check_result(t, name, new, unsafe_cast)
    xp = backend.get_array_module(t.array)
    xp.copyto(t.array, backend.to_device(new.array, t.device), casting="unsafe")


def _rebase(t, new):
    """``t`` (just overwritten) becomes the output of ``new``'s graph node; its old
    version stays in the graph as the node's input (with the hooks registered on it)."""
    s = t._stand_in
    if s is not None:           # the old version no longer fills t.grad (retain_grad)
        s._real, s._vc = None, t._vc
    t._stand_in, t._hooks = None, None
    t._ctx, t._rg = new._ctx, new._rg
    vc = t._vc
    vc.gen += 1                 # views made before now are re-derived when next used
    if vc.has_views:
        autograd._views_rebased = True


def _rebase_through_view(t, new):
    """``t`` is a view of ``base``: the base becomes "base with the view's elements
    replaced by ``new``" (SetItem at the view's positions), and t is re-derived."""
    base, chain = autograd.view_chain(t)
    xp = backend.get_array_module(base.array)
    positions = xp.arange(base.array.size).reshape(base.shape)
    for cls, consts in chain:                       # where each element of t lives
        positions = replay(cls, positions, consts)
    index = xp.unravel_index(positions, base.shape) if base.ndim else ()
    old_base = type(base)._make(base.array, base.requires_grad)
    if base._ctx is not None:
        old_base._ctx, old_base._stand_in = base._ctx, base._graph_stand_in()
    _rebase(base, SetItem.apply(old_base, new, index=index))
    t._refresh_view()


def replay(cls, array, consts):
    """A view op's forward on a raw array (to re-derive a view from its base)."""
    fn = cls()
    fn.xp = backend.get_array_module(array)
    return fn.forward(array, **consts)


# ----------------------------------------------------------------------------- the methods
def _twin(method):
    """The in-place method ``method + '_'``: the out-of-place ``method`` written into the
    tensor under apply_inplace's rules (the operands' tensors join the graph)."""
    name = method + "_"

    def inplace(self, *args, **kwargs):
        return apply_inplace(self, name, lambda old: getattr(old, method)(*args, **kwargs),
                             args + tuple(kwargs.values()), saves_old=True)
    inplace.__name__ = inplace.__qualname__ = name
    inplace.__doc__ = f"{method}, in place: x.{name}(...) writes x.{method}(...) into x."
    return inplace


class InplaceMixin:
    """Tensor's in-place methods (Tensor derives from this class)."""

    __slots__ = ()

    # Python's ``x += y`` calls these
    def __iadd__(self, o): return self.add_(o)
    def __isub__(self, o): return self.sub_(o)
    def __imul__(self, o): return self.mul_(o)
    def __itruediv__(self, o): return self.div_(o)
    def __iand__(self, o): return apply_inplace(self, "__iand__", lambda old: old & o)
    def __ior__(self, o): return apply_inplace(self, "__ior__", lambda old: old | o)
    def __ixor__(self, o): return apply_inplace(self, "__ixor__", lambda old: old ^ o)

    def __ipow__(self, exponent):
        return apply_inplace(self, "pow_", lambda old: old ** exponent, (exponent,),
                             saves_old=True)

    def add_(self, other, *, alpha=1):
        """self += alpha * other, in place."""
        other = other if alpha == 1 else other * alpha
        return apply_inplace(self, "add_", lambda old: old + other, (other,))

    def sub_(self, other, *, alpha=1):
        """self -= alpha * other, in place."""
        other = other if alpha == 1 else other * alpha
        return apply_inplace(self, "sub_", lambda old: old - other, (other,))

    def mul_(self, other):
        return apply_inplace(self, "mul_", lambda old: old * other, (other,), saves_old=True)

    def div_(self, other):
        return apply_inplace(self, "div_", lambda old: old / other, (other,), saves_old=True)

    def clamp_(self, min=None, max=None):
        return apply_inplace(self, "clamp_", lambda old: old.clip(min, max), (min, max))

    clip_ = clamp_

    # the in-place twins of the elementwise methods (x.exp_() is x.exp() written into x)
    exp_, log_, sqrt_, rsqrt_ = _twin("exp"), _twin("log"), _twin("sqrt"), _twin("rsqrt")
    abs_, neg_, sign_, square_ = _twin("abs"), _twin("neg"), _twin("sign"), _twin("square")
    relu_, sigmoid_, tanh_ = _twin("relu"), _twin("sigmoid"), _twin("tanh")
    sin_, cos_, reciprocal_ = _twin("sin"), _twin("cos"), _twin("reciprocal")
    log1p_, expm1_, floor_, ceil_ = _twin("log1p"), _twin("expm1"), _twin("floor"), _twin("ceil")
    round_, trunc_, pow_, lerp_ = _twin("round"), _twin("trunc"), _twin("pow"), _twin("lerp")
    remainder_, fmod_, nan_to_num_ = _twin("remainder"), _twin("fmod"), _twin("nan_to_num")
    addcmul_, addcdiv_ = _twin("addcmul"), _twin("addcdiv")
    clamp_min_, clamp_max_ = _twin("clamp_min"), _twin("clamp_max")
    scatter_, scatter_add_, index_add_ = _twin("scatter"), _twin("scatter_add"), \
        _twin("index_add")

    def masked_fill_(self, mask, value):
        """masked_fill, in place."""
        return apply_inplace(self, "masked_fill_", lambda old: old.masked_fill(mask, value),
                             (value,))

    # ------------------------------------------------------------------ filling in place
    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        """Every element becomes ``value`` (a number, or a 0-d tensor: then the gradient
        reaches it)."""
        if isinstance(value, T.Tensor) and value.ndim != 0:
            raise ShapeError(f"fill_: only supports a 0-dimension value tensor, got shape "
                             f"{value.shape}")
        if isinstance(value, T.Tensor):
            raw = lambda a: a.fill(value.item())   # noqa: E731
        else:
            raw = lambda a: a.fill(value)   # noqa: E731
        return apply_inplace(self, "fill_", lambda old: _replace(old, value), (value,),
                             raw=raw, unsafe_cast=True)

    def copy_(self, src, non_blocking=False):
        """Copy ``src``'s values in (broadcast to this shape, cast to this dtype, moved to
        this device); the gradient flows back to ``src``."""
        if not isinstance(src, T.Tensor):
            src = T._C.tensor(src, device=self.device)
        T._check_broadcast("copy_", src.shape, self.shape, target=self.shape)
        return apply_inplace(self, "copy_", lambda old: _replace(old, src), (src,),
                             unsafe_cast=True)

    def normal_(self, mean=0.0, std=1.0):
        """Fill with draws from N(mean, std**2) (minigrad's seeded generator)."""
        def draw():
            z = backend.random_normal(self.shape, self._draw_dtype("normal_"), self.device)
            return z * std + mean
        return apply_inplace(self, "normal_", lambda old: _replace(old, draw()),
                             raw=lambda a: a.__setitem__(Ellipsis, draw()))

    def uniform_(self, a=0.0, b=1.0):
        """Fill with draws from U(a, b) (minigrad's seeded generator)."""
        def draw():
            u = backend.random_uniform(self.shape, self._draw_dtype("uniform_"), self.device)
            return u * (b - a) + a
        return apply_inplace(self, "uniform_", lambda old: _replace(old, draw()),
                             raw=lambda arr: arr.__setitem__(Ellipsis, draw()))

    def _draw_dtype(self, name):
        if self.array.dtype.kind != "f":
            raise DTypeError(f"{name}: needs a floating-point tensor, got dtype {self.dtype}")
        return self.array.dtype

    def __setitem__(self, index, value):
        """``x[index] = value`` in place (a number or a tensor, broadcast and cast to this
        dtype); under autograd it is recorded like any in-place op (see inplace.py)."""
        arr_index = T._index_arg(index)
        if not isinstance(value, T.Tensor):
            value = T._C.tensor(value, device=self.device)
        if value.dtype != self.dtype:
            value = value.astype(self.dtype)
        _check_device("index assignment", self, value)

        def write(arr):
            arr[arr_index] = value.array

        def compute(old):
            return T._guard(SetItem.apply(old, value, index=arr_index), index)
        try:
            apply_inplace(self, "index assignment", compute, (value,), raw=write)
        except IndexError as exc:
            if isinstance(exc, IndexRangeError):
                raise
            raise IndexRangeError(f"index assignment: {exc} (a tensor of shape "
                                  f"{self.shape})") from None
        except ValueError as exc:   # NumPy: "shape mismatch: value array of shape ..."
            if isinstance(exc, ShapeError) or "shape" not in str(exc):
                raise
            raise ShapeError(f"index assignment: {exc} (a tensor of shape {self.shape}; the "
                             f"value must broadcast to the indexed part)") from None


# ----------------------------------------------------------------------------- helpers
def _check_device(name, a, b):
    if a.device != b.device:
        raise DeviceError(f"{name}: expected both tensors on the same device, got {a.device} "
                          f"and {b.device}; move one with .to({a.device!r})")


def _replace(old, value):
    """"Every element of old becomes value" as a graph node (torch's fill_/copy_): the
    gradient reaches ``value`` (summed over the broadcast), and is zero for ``old``."""
    if isinstance(value, T.Tensor):
        value = value.to(old.device).astype(old.dtype)
    else:
        value = old._wrap_as(value, old.dtype)
    xp = backend.get_array_module(old.array)
    return ops.Where.apply(old, value, condition=xp.zeros((), dtype=bool))
