"""Optimizers with torch.optim's names, defaults and update formulas.

Every update works in place on the raw arrays (``p.array``, ``p.grad.array``) with
the parameter's own array module ``xp`` (NumPy or CuPy), so the optimizer state
is created on the parameters' device; if the model moves later (``model.to("cuda")``),
each state array follows its parameter at the next ``step()``, and
``load_state_dict`` puts loaded state on the parameters' device.

    opt = AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    loss.backward(); opt.step(); opt.zero_grad()

State layout (as in torch): ``opt.state[p]`` is a dict per parameter, e.g.
``{"step": 3, "exp_avg": array, "exp_avg_sq": array}``; ``state_dict()`` keys
it by the parameter's index in the groups instead, so it can be saved.
"""
from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from .. import backend
from ..errors import ArgumentError, ShapeError, StateDictError

_required = object()   # marks a hyperparameter that has no default ("lr" of a bare Optimizer)


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not hasattr(x, "grad")


def _follow_param(p, state):
    """Keep the state on the parameter's device and dtype (after ``model.to("cuda")``)."""
    device, dtype = backend.device_of(p.array), p.array.dtype
    for name, value in state.items():
        if _is_array(value) and value.ndim > 0:
            if backend.device_of(value) != device:
                value = state[name] = backend.to_device(value, device)
            if value.dtype != dtype and value.dtype.kind == "f":
                state[name] = value.astype(dtype)


class Optimizer:
    """Base class: parameter groups, state, zero_grad, state_dict.

    ``params`` is an iterable of parameters, or of dicts ``{"params": [...], **overrides}``
    (one parameter group each; hyperparameters missing from a group take ``defaults``).
    Subclasses implement ``_update(p, grad, state, group)`` on raw arrays.
    """

    def __init__(self, params, defaults: dict):
        if hasattr(params, "array") and hasattr(params, "grad"):
            raise TypeError("params: expected an iterable of Tensors or of dicts, got a single "
                            f"{type(params).__name__} (wrap it in a list)")
        self.defaults = dict(defaults)
        self.state: dict = {}           # param -> dict of its state (keyed by identity)
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise ArgumentError("params: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group ``{"params": ..., **hyperparameters}`` (e.g. when unfreezing layers)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("param_group: missing the 'params' key")
        params = [params] if hasattr(params, "grad") else list(params)
        for p in params:
            if not (hasattr(p, "array") and hasattr(p, "grad")):
                raise TypeError(f"params: optimizer can only optimize Tensors, got "
                                f"{type(p).__name__}")
            if not getattr(p, "is_leaf", True):
                raise ValueError("params: can't optimize a non-leaf Tensor (use a Parameter "
                                 "or a tensor created with requires_grad=True)")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise ValueError("params: a parameter group contains the same parameter more than "
                             "once (it would be updated twice per step); pass each once, e.g. "
                             "model.parameters(), which skips tied weights")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if seen.intersection(ids):
            raise ValueError("params: some parameters appear in more than one parameter group")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is _required and name not in group:
                raise ValueError(f"param_group: parameter group didn't specify a value of "
                                 f"required optimization parameter {name!r}")
            group.setdefault(name, default)
        where = f"param_groups[{len(self.param_groups)}]"
        self._check_hyperparameters(
            group, lambda name, msg: ArgumentError(f"{where}[{name!r}]: {msg}"))
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``p.grad = None`` (default, like torch) or fill them with 0."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.array.fill(0)

    # ------------------------------------------------------------------ step
    def step(self, closure=None):
        """One update of every parameter that has a gradient. ``closure`` (optional)
        re-evaluates the model and returns the loss, which step returns."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.array
                if grad.shape != p.array.shape:
                    raise ShapeError(f"{type(self).__name__}.step: gradient of shape "
                                     f"{tuple(grad.shape)} for a parameter of shape "
                                     f"{tuple(p.array.shape)}")
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {}
                elif state:
                    _follow_param(p, state)
                self._update(p, grad, state, group)
                p._counter().bump()     # an in-place write: graphs that saved p see it
        return loss

    def _update(self, p, grad, state, group):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _update")

    # ------------------------------------------------------------------ state
    def _indexed_params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """``{"state": {index: {name: array | number}},
        "param_groups": [{**hyperparameters, "params": [indices]}]}``.

        As in torch, the arrays are the live state (not copies): save or copy them
        before the next ``step()``. Indices count parameters across groups in order.
        """
        index = {id(p): i for i, p in enumerate(self._indexed_params())}
        groups, start = [], 0
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(g)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore moments, step counts and hyperparameters saved by ``state_dict()``.

        The groups must have the same sizes as this optimizer's. Arrays are copied,
        cast to each parameter's dtype (step counts stay numbers) and moved to its
        device; state keys may be ints or their strings (after a JSON round trip).
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise StateDictError(f"state_dict: expected a dict with the keys ['param_groups', "
                                 f"'state'], got {got}")
        saved_groups, saved_states = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple))
                for g in saved_groups):
            raise StateDictError("state_dict: param_groups must be a list of dicts, each with "
                                 "a 'params' list of parameter indices")
        if not isinstance(saved_states, dict):
            raise StateDictError(f"state_dict: state must be a dict, got "
                                 f"{type(saved_states).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise StateDictError(f"state_dict: loaded state dict has {len(saved_groups)} "
                                 f"parameter groups, this optimizer has "
                                 f"{len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise StateDictError(f"state_dict: parameter group {i} has "
                                     f"{len(saved['params'])} parameters in the loaded state "
                                     f"dict, {len(group['params'])} in this optimizer")
        new_groups = [self._loaded_group(i, saved, group)
                      for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups))]
        params, group_of = {}, {}
        for saved, group, new in zip(saved_groups, self.param_groups, new_groups):
            for i, p in zip((_index_of(i) for i in saved["params"]), group["params"]):
                params[i], group_of[i] = p, {**group, **new}
        new_state = {}
        for key, saved_state in saved_states.items():
            index = _index_of(key)
            if index not in params:
                raise StateDictError(f"state_dict: state for parameter index {index} but the "
                                     f"groups only hold indices {sorted(params)}")
            if not isinstance(saved_state, dict):
                raise StateDictError(f"state_dict: state {index} must be a dict, got "
                                     f"{type(saved_state).__name__}")
            new_state[params[index]] = self._loaded_state(
                params[index], f"state.{index}", saved_state, group_of[index])
        for group, new in zip(self.param_groups, new_groups):
            group.update(new)
        self.state = new_state

    # ------------------------------------------------------------------ checks
    # Each optimizer states the range of each hyperparameter once (_RANGES); the
    # constructor, add_param_group and load_state_dict all check against it.
    _RANGES: dict = {}     # name -> (predicate on finite numbers, what the value must be)

    @classmethod
    def _check_hyperparameters(cls, values: dict, error) -> None:
        """Raise ``error(name, message)`` unless every hyperparameter in ``values`` that this
        optimizer knows is finite and in its range (a tuple such as betas: every item
        finite). Flags (amsgrad, nesterov, ...) take any truth value, as in torch; loaded
        ones must be bools like the optimizer's own (``_check_hyperparameter``)."""
        for name, (ok, expected) in cls._RANGES.items():
            if name not in values:
                continue
            value = values[name]
            items = value if isinstance(value, tuple) else (value,)
            if not (all(_is_number(v) for v in items) and ok(value)):
                raise error(name, f"expected {expected}, got {value!r}"[:300])

    def _loaded_group(self, i: int, saved: dict, group: dict) -> dict:
        """The hyperparameters of saved group ``i``: checked, copied."""
        new = {}
        for name, value in saved.items():
            if name == "params":
                continue
            if isinstance(self.defaults.get(name), tuple) and isinstance(value, list):
                value = tuple(value)   # betas come back from JSON as a list
            _check_hyperparameter(i, name, value, group.get(name))
            new[name] = copy.deepcopy(value)
        self._check_hyperparameters(
            {**group, **new},
            lambda name, msg: StateDictError(f"state_dict: param_groups[{i}][{name!r}]: {msg}"))
        return new

    # The state each optimizer keeps per parameter: names that must all be there once the
    # parameter has any state, names that may be, and the name of the step count if any.
    _STATE_REQUIRED: tuple = ()
    _STATE_OPTIONAL: tuple = ()
    _STEP: str | None = None
    _NONNEGATIVE: tuple = ()       # moments that are means of squares

    def _state_names(self, group: dict) -> tuple[tuple, tuple]:
        """(required, optional) state names of a parameter of ``group`` that has state."""
        return self._STATE_REQUIRED, self._STATE_OPTIONAL

    def _loaded_state(self, p, where: str, saved: dict, group: dict) -> dict:
        """A parameter's saved state, checked and copied onto its device and dtype: every
        name this optimizer keeps is there (or none at all: a parameter never stepped), the
        step count is a whole number >= 0, every moment a finite floating array of exactly
        the parameter's shape (second moments >= 0)."""
        if not saved:
            return {}
        required, optional = self._state_names(group)
        unknown = [n for n in saved if n not in required and n not in optional]
        if unknown:
            raise StateDictError(f"state_dict: {where}.{unknown[0]} is not state that "
                                 f"{type(self).__name__} keeps (it keeps "
                                 f"{sorted(required + optional)})"[:300])
        missing = [n for n in required if n not in saved]
        if missing:
            raise StateDictError(f"state_dict: {where} lacks {missing} (it has "
                                 f"{sorted(saved)}); {type(self).__name__} needs "
                                 f"{list(required)} once a parameter has state")
        out = {}
        for name, value in saved.items():
            key = f"{where}.{name}"
            if name == self._STEP:
                out[name] = _step_count(key, value)
            elif value is None and name in optional:
                out[name] = None
            else:
                out[name] = _moment(p, key, value, name in self._NONNEGATIVE)
        return out

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _index_of(key) -> int:
    """A parameter index from an int or its string (JSON keys are strings)."""
    if isinstance(key, bool) or not isinstance(key, (numbers.Integral, str)) or \
            (isinstance(key, str) and not (key.isascii() and key.isdigit() and len(key) < 10)):
        raise StateDictError(f"state_dict: parameter indices must be ints, got {key!r}"[:200])
    return int(key)


_MAX_STEP = 2 ** 63 - 1     # a step count beyond int64 is damage (and beta ** step overflows)


def _step_count(key: str, value) -> int:
    """A saved step count as an int: a whole number in [0, 2**63) (torch saves a 0-d float
    tensor, JSON an int)."""
    if hasattr(value, "array") and hasattr(value, "grad"):   # a Tensor
        value = value.array
    if _is_array(value):
        if value.shape != () or value.dtype.kind not in "iuf":
            raise StateDictError(f"state_dict: {key} must be a step count (a number or a 0-d "
                                 f"array), got an array of shape {tuple(value.shape)} and "
                                 f"dtype {value.dtype}")
        value = backend.to_numpy(value).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not (math.isfinite(value) and value == int(value) and 0 <= value <= _MAX_STEP):
        raise StateDictError(f"state_dict: {key} must be a step count, a whole number in "
                             f"[0, 2**63), got {type(value).__name__} {value!r}"[:200])
    return int(value)


def _moment(p, key: str, value, nonnegative: bool = False):
    """A saved moment (exp_avg, momentum_buffer, ...), checked: a floating array of exactly
    ``p``'s shape, finite (and >= 0 if ``nonnegative``); returned as a copy on ``p``'s device
    in ``p``'s dtype."""
    if hasattr(value, "array") and hasattr(value, "grad"):   # a Tensor
        value = value.array
    if not _is_array(value):
        raise StateDictError(f"state_dict: {key} must be an array of the parameter's shape "
                             f"{tuple(p.array.shape)}, got {type(value).__name__} "
                             f"{value!r}"[:200])
    if value.dtype.kind != "f":
        raise StateDictError(f"state_dict: {key} has dtype {value.dtype}, expected a floating "
                             f"dtype (the parameter's is {p.array.dtype})")
    if tuple(value.shape) != tuple(p.array.shape):
        raise StateDictError(f"state_dict: {key} has shape {tuple(value.shape)}, the "
                             f"parameter has shape {tuple(p.array.shape)}")
    xp = backend.get_array_module(p.array)
    arr = xp.array(backend.to_device(value, backend.device_of(p.array)), dtype=p.array.dtype,
                   copy=True)
    if not bool(xp.isfinite(arr).all()):        # the next step would make the weights NaN
        raise StateDictError(f"state_dict: {key} holds NaN or infinite values (saved from a "
                             "run that diverged, or damaged)")
    if nonnegative and bool((arr < 0).any()):   # a second moment: sqrt of it is taken
        raise StateDictError(f"state_dict: {key} holds negative values; it is a mean of "
                             "squares, >= 0")
    return arr


def _check_hyperparameter(group: int, name: str, value, current) -> None:
    """A loaded hyperparameter must have the kind of value the optimizer holds now (a
    number, a bool, a tuple of numbers), so a damaged state dict fails here, not in step."""
    if current is None or current is _required:
        return
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, numbers.Real):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not (
            isinstance(value, float) and math.isnan(value))
    elif isinstance(current, tuple):
        ok = isinstance(value, tuple) and len(value) == len(current) and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    else:
        ok = True
    if not ok:
        raise StateDictError(f"state_dict: param_groups[{group}][{name!r}] must be like "
                             f"{current!r}, got {value!r}"[:300])


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _implementation_flags(owner, differentiable):
    """torch's foreach=, fused= and capturable= choose among implementations of the same
    update; minigrad has one (a compiled loop on the CPU), so they are accepted and change
    nothing. differentiable=True (gradients through the step) is refused."""
    if differentiable:
        raise ArgumentError(f"{owner}: differentiable=True is not supported (minigrad records "
                            f"no graph through an optimizer step)")


def _constructor_error(name, message):
    return ArgumentError(f"{name}: {message}")


def _at_least_0(v) -> bool:
    return v >= 0


# ----------------------------------------------------------------------------- SGD
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (torch.optim.SGD).

    g = grad + weight_decay * p
    buf = g (first step) | momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (nesterov) | buf
    p -= lr * g
    """

    _RANGES = {"lr": (_at_least_0, "a learning rate >= 0"),
               "momentum": (_at_least_0, "momentum >= 0"),
               "dampening": (lambda v: True, "a finite number"),
               "weight_decay": (_at_least_0, "weight_decay >= 0")}
    _STATE_OPTIONAL = ("momentum_buffer",)     # None or missing: the next step starts one

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        _implementation_flags(type(self).__name__, differentiable)
        self._check_hyperparameters(dict(lr=lr, momentum=momentum, dampening=dampening,
                                         weight_decay=weight_decay, nesterov=nesterov),
                                    _constructor_error)
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    @classmethod
    def _check_hyperparameters(cls, values: dict, error) -> None:
        super()._check_hyperparameters(values, error)
        if values.get("nesterov") and (values.get("momentum", 0) <= 0 or
                                       values.get("dampening", 0) != 0):
            raise error("nesterov", f"Nesterov momentum requires a momentum > 0 and zero "
                                    f"dampening, got momentum={values.get('momentum')}, "
                                    f"dampening={values.get('dampening')}")

    def _update(self, p, grad, state, group):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        if wd != 0:
            grad = grad + wd * p.array
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.array -= lr * grad


# ----------------------------------------------------------------------------- Adam(W)
class Adam(Optimizer):
    """Adam (torch.optim.Adam): weight decay is an L2 term added to the gradient.

    t += 1;  g = grad + weight_decay * p
    m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
    denom = sqrt(v) / sqrt(1 - beta2**t) + eps          (sqrt(max v) with amsgrad)
    p -= lr / (1 - beta1**t) * m / denom
    """

    _decoupled = False
    _RANGES = {"lr": (_at_least_0, "a learning rate >= 0"),
               "betas": (lambda v: isinstance(v, tuple) and len(v) == 2 and
                         all(0 <= b < 1 for b in v), "two values in [0, 1)"),
               "eps": (_at_least_0, "eps >= 0"),
               "weight_decay": (_at_least_0, "weight_decay >= 0")}
    _STEP = "step"
    _NONNEGATIVE = ("exp_avg_sq", "max_exp_avg_sq")

    def _state_names(self, group):
        """step, exp_avg and exp_avg_sq; with amsgrad also max_exp_avg_sq."""
        if group.get("amsgrad"):
            return ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), ()
        return ("step", "exp_avg", "exp_avg_sq"), ("max_exp_avg_sq",)

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None):
        _implementation_flags(type(self).__name__, differentiable)
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas
        self._check_hyperparameters(dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay),
                                    _constructor_error)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, p, grad, state, group):
        xp = backend.get_array_module(p.array)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.array)
            state["exp_avg_sq"] = xp.zeros_like(p.array)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.array)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if getattr(m, "shape", None) != p.array.shape or getattr(v, "shape", None) != \
                p.array.shape:   # state set by hand (load_state_dict checks it)
            raise StateDictError(f"{type(self).__name__}.step: a parameter of shape "
                                 f"{tuple(p.array.shape)} has exp_avg of shape "
                                 f"{getattr(m, 'shape', None)} and exp_avg_sq of shape "
                                 f"{getattr(v, 'shape', None)}; both must have its shape")
        state["step"] += 1
        # The readable update below, or the same steps as one compiled pass (adam_step_ in
        # minigrad/backend/kernels.py), picked by the switch the fused ops use; tests hold
        # the two equal (tests/minigrad/backend/test_kernels.py).
        loops = None if group["amsgrad"] else backend.kernels_for(xp, p.array, grad, m, v)
        if loops is not None:
            self._compiled_update(loops, p, grad, state, group)
        else:
            self._readable_update(xp, p, grad, state, group)

    def _compiled_update(self, loops, p, grad, state, group):
        """The update of _readable_update as one compiled loop over the flat arrays: its
        arguments fold maximize, L2 or decoupled decay and bias correction into scalars
        (floats, so that each dtype has one compiled signature)."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], \
            group["weight_decay"]
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        loops.adam_step_(p.array.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                         -1.0 if group["maximize"] else 1.0,
                         0.0 if self._decoupled else float(wd),
                         float(1 - lr * wd) if self._decoupled else 1.0,
                         float(beta1), float(beta2), float(lr / (1 - beta1 ** t)),
                         math.sqrt(1 - beta2 ** t), float(eps))

    def _readable_update(self, xp, p, grad, state, group):
        """One Adam(W) step written against xp, in place (the class docstring's formulas):
        the path for CuPy, for amsgrad, and for readers."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], \
            group["weight_decay"]
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if group["maximize"]:
            grad = -grad
        if wd != 0:
            if self._decoupled:
                p.array *= 1 - lr * wd
            else:
                grad = grad + wd * p.array
        tmp = xp.multiply(grad, 1 - beta1)    # the one scratch array of this update
        m *= beta1
        m += tmp                              # m = beta1 m + (1 - beta1) g
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1 - beta2
        v *= beta2
        v += tmp                              # v = beta2 v + (1 - beta2) g^2
        if group["amsgrad"]:
            vmax = state.setdefault("max_exp_avg_sq", xp.zeros_like(p.array))
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        bias_correction1 = 1 - beta1 ** t
        bias_correction2 = 1 - beta2 ** t
        denom = xp.sqrt(v, out=tmp)
        denom /= math.sqrt(bias_correction2)
        denom += eps                          # sqrt(v) / sqrt(bc2) + eps
        xp.divide(m, denom, out=denom)        # now the update direction m / denom
        denom *= lr / bias_correction1
        p.array -= denom


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): decoupled weight decay ``p *= 1 - lr * weight_decay``
    before the Adam update (no L2 term in the moments). Default weight_decay 1e-2."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, differentiable=differentiable)


# ----------------------------------------------------------------------------- helpers
def weight_decay_groups(named_params, weight_decay: float) -> list[dict]:
    """nanoGPT's split: decay the matrices (ndim >= 2: Linear and Embedding weights), not
    the biases and norm gains (ndim < 2). Takes ``model.named_parameters()`` or
    ``model.parameters()``; returns two groups for any optimizer:

        [{"params": [matrices], "weight_decay": wd}, {"params": [vectors], "weight_decay": 0.0}]
    """
    decay, no_decay = [], []
    for item in named_params:
        p = item[1] if isinstance(item, tuple) else item
        if not getattr(p, "requires_grad", True):
            continue
        (decay if p.array.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False):
    """Scale the gradients in place so their joint norm is at most ``max_norm``
    (torch.nn.utils.clip_grad_norm_). Returns the total norm before clipping, as torch
    does: a 0-d tensor (of the gradients' dtype; ``.item()`` or ``float()`` for a number).

    The total norm is the norm of the per-parameter norms (any ``norm_type``,
    ``float("inf")`` for the max); gradients are multiplied by
    ``min(1, max_norm / (total_norm + 1e-6))``. Parameters without a gradient are skipped.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or \
            not max_norm >= 0:
        raise ArgumentError(f"clip_grad_norm_: max_norm must be a number >= 0 (inf: no "
                            f"clipping), got {max_norm!r}")
    if hasattr(parameters, "grad"):
        parameters = [parameters]
    from ..tensor import Tensor
    grads = [p.grad.array for p in parameters if p.grad is not None]
    if not grads:
        return Tensor._make(np.zeros((), np.float32), False)
    norm_type = float(norm_type)
    xp = backend.get_array_module(grads[0])
    if any(backend.get_array_module(g) is not xp for g in grads):
        raise ValueError("clip_grad_norm_: gradients live on different devices "
                         f"({sorted({backend.device_of(g) for g in grads})})")
    norms = xp.stack([xp.linalg.norm(g.ravel(), norm_type) for g in grads])
    total = float(xp.linalg.norm(norms, norm_type))   # one device sync
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                           f"gradients is {total}; set error_if_nonfinite=False to clip anyway")
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:     # also when the norm is NaN: the gradients become NaN, as in torch
        for g in grads:
            g *= coef
    return Tensor._make(xp.asarray(total, dtype=grads[0].dtype), False)


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "weight_decay_groups"]
