"""Parameter and Module, as in torch.nn (the containers are in container.py).

A Module registers what is assigned to it: a Parameter goes to ``_parameters``, a
Module to ``_modules``; ``register_buffer`` adds non-trainable tensors (saved in
``state_dict`` unless ``persistent=False``). Names are dotted paths:

    model.h[0].attn.c_attn.weight  <->  "h.0.attn.c_attn.weight"

Tied weights (``lm_head.weight = wte.weight``): ``parameters()`` and
``named_parameters()`` yield the shared Parameter once, under its first name;
``state_dict()`` lists it under every name, exactly like torch.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..errors import ArgumentError
from ..errors import StateDictError  # noqa: F401  (re-exported: minigrad.nn.StateDictError)
from ..tensor import Tensor, as_dtype


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that is a module's learnable weight: requires grad by default, and is
    registered when assigned to a Module attribute. Built from a Tensor (sharing its
    memory, like torch) or from an array / nested list."""

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        dtype = data.dtype if hasattr(data, "dtype") else None   # keep float64 as float64
        super().__init__(data, dtype=dtype, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _RemovableHandle:
    """What register_forward_hook returns: .remove() unregisters the hook."""

    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _is_device(x) -> bool:
    return isinstance(x, str) and x.split(":")[0] in backend.DEVICES


def _check_name(kind, name):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{kind} name can't be empty or contain '.', got {name!r}")


class Module:
    """Base class of every layer and model: subclass it, assign parameters and
    submodules in ``__init__``, and write ``forward``; call the module to run it."""

    training: bool
    _forward_hooks = _forward_pre_hooks = None     # lists, made by the first registration

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function')

    def __call__(self, *args, **kwargs):
        if self._forward_hooks is None and self._forward_pre_hooks is None:
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks or ()):
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks or ()):
            changed = hook(self, args, out)
            if changed is not None:
                out = changed
        return out

    # ------------------------------------------------------------------ hooks
    def register_forward_hook(self, hook):
        """Call hook(module, inputs, output) after each forward (a returned value replaces
        the output): to read activations. Returns a handle; handle.remove() unregisters."""
        return self._add_hook("_forward_hooks", hook)

    def register_forward_pre_hook(self, hook):
        """Call hook(module, inputs) before each forward (a returned value replaces the
        inputs). Returns a handle; handle.remove() unregisters."""
        return self._add_hook("_forward_pre_hooks", hook)

    def _add_hook(self, table, hook):
        hooks = self.__dict__.get(table)
        if hooks is None:
            hooks = []
            object.__setattr__(self, table, hooks)
        hooks.append(hook)
        return _RemovableHandle(hooks, hook)

    def register_full_backward_hook(self, hook):
        raise ArgumentError("register_full_backward_hook is not supported: register a hook on "
                            "the tensors instead, e.g. out = module(x); "
                            "out.register_hook(lambda grad: ...)")

    register_backward_hook = register_full_backward_hook

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name)
            params[name] = value
            return
        if params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a minigrad.nn.Parameter or None expected)")
            params[name] = None
            return
        modules = self.__dict__.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name)
            modules[name] = value
            return
        if modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module "
                                f"{name!r} (a minigrad.nn.Module or None expected)")
            modules[name] = None
            return
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a minigrad.Tensor or None expected)")
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def _forget(self, name):
        self.__dict__.pop(name, None)
        for table in ("_parameters", "_buffers", "_modules"):
            self.__dict__[table].pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name):
        # only called when normal lookup fails: parameters, buffers and submodules
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(table, ()):
                del self.__dict__[table][name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder) under ``name``."""
        _check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute {name!r} already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} "
                            "(a minigrad.nn.Parameter or None expected)")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a non-trainable tensor (a mask, running statistics, ...) that moves with
        ``to()`` and, when ``persistent``, is saved in ``state_dict()``."""
        _check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} "
                            "(a minigrad.Tensor or None expected)")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (what attribute assignment does)."""
        _check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path, e.g. ``"h.0.attn"``."""
        mod = self
        for part in target.split(".") if target else []:
            child = mod._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(mod).__name__} has no submodule {part!r} "
                                     f"(looking up {target!r})")
            mod = child
        return mod

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(dotted name, module) for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = f"{prefix}.{name}" if prefix else name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, table, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, table).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True):
        """(dotted name, Parameter); a tied Parameter appears once, under its first name."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, only_trainable: bool = False) -> int:
        """How many numbers the parameters hold (tied weights counted once)."""
        return sum(int(p.array.size) for p in self.parameters()
                   if p.requires_grad or not only_trainable)

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every submodule, then on self (for custom inits)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ training state
    def train(self, mode: bool = True) -> Module:
        """Set the ``training`` flag (read by Dropout) on this module and all submodules."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode should be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (``p.grad = None``), or fill it with zeros."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.array.fill(0)

    # ------------------------------------------------------------------ device / dtype
    def to(self, device=None, dtype=None) -> Module:
        """Move (and/or cast) every parameter, its gradient and every buffer in place, so
        references held elsewhere (an optimizer, a tied module) follow. ``to("cuda")``,
        ``to("float64")`` and ``to("cuda", "float64")`` all work; only floating-point
        tensors are cast. Returns self."""
        if device is not None and not _is_device(device):
            if dtype is not None:
                raise TypeError(f"to: expected a device name, got {device!r}")
            device, dtype = None, device
        device = backend.check_device(device) if device is not None else None
        dtype = as_dtype(dtype)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"to: Module.to only accepts floating point dtypes, got {dtype}")

        def convert(array):
            if device is not None:
                array = backend.to_device(array, device)
            if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
                array = array.astype(dtype)
            return array

        for t in list(self.parameters()) + list(self.buffers()):
            t.array = convert(t.array)
            if t.grad is not None:
                t.grad.array = convert(t.grad.array)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    def half(self) -> Module:
        return self.to(dtype=np.float16)

    # ------------------------------------------------------------------ state dict
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """``{dotted name: Tensor}`` of every parameter and persistent buffer.

        As in torch the values are detached but share memory with the live parameters
        (an optimizer step changes them): save them, or copy them, before training on.
        A tied parameter appears under each of its names.
        """
        if destination is None:
            destination = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=f"{prefix}{name}.",
                             keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and buffers (in place, cast to their dtype and
        moved to their device). Values may be Tensors or NumPy/CuPy arrays.

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always
        is. Nothing is copied unless everything fits. Returns (missing_keys, unexpected_keys).
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors, sources = [], {}
        for key, dst in own.items():
            if key not in state_dict:
                continue
            src = state_dict[key]
            src = src.array if isinstance(src, Tensor) else src
            if not (hasattr(src, "shape") and hasattr(src, "dtype")):
                src = np.asarray(src)
            if src.dtype.kind not in "biuf":
                errors.append(f"value for {key} has dtype {src.dtype}, expected a numeric "
                              f"array of shape {dst.shape}.")
            elif tuple(src.shape) != dst.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape "
                              f"{tuple(src.shape)} from checkpoint, the shape in current model "
                              f"is {dst.shape}.")
            sources[key] = src
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ".")
        if errors:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                                 + "\n\t".join(errors))
        for key, src in sources.items():
            dst = own[key]
            dst.array[...] = backend.to_device(src, dst.device)
            dst._counter().bump()
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """The text between the parentheses of this module's line (override it)."""
        return ""

    def _child_reprs(self):
        return [(name, repr(m)) for name, m in self._modules.items()]

    def __repr__(self):
        n = self.num_parameters()
        count = f"  # {n:,} parameters" if n else ""
        children = self._child_reprs()
        if not children:
            return f"{type(self).__name__}({self.extra_repr()}){count}"
        lines = [f"{type(self).__name__}({self.extra_repr()}{count}"]
        for name, text in children:
            text = text.replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return "\n".join(lines) + "\n)"
