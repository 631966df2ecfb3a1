"""The harness of the PyTorch-idiom tests: each case is written once, in PyTorch spelling,
against a library ``lib`` (``minigrad`` or ``torch``) and run with both.

    @idiom
    def compare_with_a_scalar(lib):
        t = lib.tensor([1.0, 6.0, 3.0])
        return t == 6.0

    @idiom(expect=[False, True, False])      # also checked where torch is absent
    def ...

A case passes when both libraries give the same result (values, dtype, shape, Python types,
nested tuples/lists/dicts alike), or when both raise. ``expect`` (optional) is a value computed
by hand or with NumPy: it is compared with minigrad's result on every run, so the case tests
something even where torch is not installed; without it the case needs torch and skips.
"""
from __future__ import annotations

import numbers

import numpy as np
import pytest

import minigrad

try:
    import torch
except ImportError:     # the cases that need it skip
    torch = None

CASES: dict[str, tuple] = {}     # name -> (function, expect, rtol)
_NO_EXPECT = object()


def idiom(fn=None, *, expect=_NO_EXPECT, rtol=1e-5):
    """Register a case (used bare or with keywords)."""
    def register(f):
        if f.__name__ in CASES:
            raise ValueError(f"idiom {f.__name__!r} is defined twice")
        CASES[f.__name__] = (f, expect, rtol)
        return f
    return register(fn) if fn is not None else register


def plain(value):
    """A result as plain, comparable data: tensors as ('tensor', dtype name, NumPy array)."""
    if isinstance(value, minigrad.Tensor):
        return ("tensor", str(value.dtype), value.detach().numpy())
    if torch is not None and isinstance(value, torch.Tensor):
        return ("tensor", str(value.dtype).replace("torch.", ""), value.detach().cpu().numpy())
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):       # namedtuples compare as tuples
        return tuple(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return ("array", str(value.dtype), value)
    if isinstance(value, np.generic):
        return plain(value.item())
    return value


def assert_same(ours, theirs, rtol, where="result"):
    """Equal structure, dtypes, shapes and Python types; values within rtol."""
    if isinstance(theirs, tuple) and theirs[:1] in (("tensor",), ("array",)):
        assert isinstance(ours, tuple) and ours[:1] == theirs[:1], \
            f"{where}: expected a {theirs[0]}, got {ours!r}"
        assert ours[1] == theirs[1], f"{where}: dtype {ours[1]} != {theirs[1]}"
        a, b = np.asarray(ours[2]), np.asarray(theirs[2])
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs), \
            f"{where}: expected {len(theirs)} items, got {ours!r}"
        for i, (o, t) in enumerate(zip(ours, theirs)):
            assert_same(o, t, rtol, f"{where}[{i}]")
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), \
            f"{where}: keys {sorted(ours) if isinstance(ours, dict) else ours} != {sorted(theirs)}"
        for k in theirs:
            assert_same(ours[k], theirs[k], rtol, f"{where}[{k!r}]")
    elif isinstance(theirs, bool) or theirs is None or isinstance(theirs, str):
        assert type(ours) is type(theirs) and ours == theirs, f"{where}: {ours!r} != {theirs!r}"
    elif isinstance(theirs, numbers.Number):
        assert type(ours) is type(theirs), \
            f"{where}: type {type(ours).__name__} != {type(theirs).__name__}"
        assert ours == pytest.approx(theirs, rel=rtol, nan_ok=True), f"{where}: {ours} != {theirs}"
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def check_expect(ours, expect, rtol, name):
    """A tensor result against the values in ``expect`` (a list, array or number); a tuple
    result against a tuple ``expect`` item by item; any other result against ``expect``
    exactly as assert_same compares."""
    if isinstance(ours, tuple) and ours[:1] not in (("tensor",), ("array",)) and \
            isinstance(expect, tuple):
        assert len(ours) == len(expect), f"{name}: {len(ours)} items, expected {len(expect)}"
        for i, (o, e) in enumerate(zip(ours, expect)):
            check_expect(o, e, rtol, f"{name}[{i}]")
    elif isinstance(ours, tuple) and ours[:1] == ("tensor",):
        got, want = np.asarray(ours[2]), np.asarray(expect)
        assert got.shape == want.shape, f"{name}: shape {got.shape} != expected {want.shape}"
        if got.dtype.kind == "f" or want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-3, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        assert_same(ours, plain(expect), rtol, f"{name} vs expect")


def outcome(fn, lib):
    """('ok', plain result) or ('raised', exception)."""
    try:
        return "ok", plain(fn(lib))
    except Exception as exc:   # noqa: BLE001  (any error counts as "raised"; compared below)
        return "raised", exc


def check_case(name):
    fn, expect, rtol = CASES[name]
    minigrad.manual_seed(0)
    ours = outcome(fn, minigrad)
    if expect is not _NO_EXPECT:
        if ours[0] == "raised":
            raise AssertionError(f"{name}: minigrad raised {ours[1]!r}") from ours[1]
        check_expect(ours[1], expect, rtol, name)
    if torch is None:
        if expect is _NO_EXPECT:
            pytest.skip("needs torch to compare with")
        return
    torch.manual_seed(0)
    theirs = outcome(fn, torch)
    if theirs[0] == "raised":
        assert ours[0] == "raised", (f"{name}: torch raises {theirs[1]!r}, minigrad returned "
                                     f"{ours[1]!r}")
        return
    if ours[0] == "raised":
        raise AssertionError(f"{name}: torch returns {theirs[1]!r}, minigrad raised "
                             f"{ours[1]!r}") from ours[1]
    assert_same(ours[1], theirs[1], rtol, name)


def cases_of(module: str) -> list[str]:
    """The names of the cases defined in one test module, for parametrize:

        @pytest.mark.parametrize("name", cases_of(__name__))
        def test_idiom(name):
            check_case(name)
    """
    return [n for n, (f, _, _) in CASES.items() if f.__module__ == module]
