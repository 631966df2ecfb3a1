"""The public gradient checker and the graph drawer."""
import shutil

import numpy as np
import pytest

import minigrad as mg
from minigrad import viz
from minigrad.autograd import Function
from minigrad.errors import DTypeError, GradcheckError


class WrongSquare(Function):
    """x^2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * 3 * self.x


def test_gradcheck_passes_a_correct_function():
    x = mg.randn(3, 2, dtype="float64", requires_grad=True)
    result = mg.gradcheck(lambda t: (t * t).tanh(), [x])
    assert result and result.inputs[0].max_abs_error < 1e-7


def test_gradcheck_names_input_and_worst_element():
    a = mg.tensor([0.5, 1.0], dtype="float64", requires_grad=True)
    x = mg.tensor([[1.0, -2.0], [3.0, 0.1]], dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(2, 2\)\).*worst element"):
        mg.gradcheck(lambda p, q: WrongSquare.apply(q) * 2 + p.sum(), [a, x])
    report = mg.gradcheck(lambda q: WrongSquare.apply(q), [x], raise_exception=False)
    assert not report.ok
    assert report.inputs[0].worst_element == (1, 0)    # |3x - 2x| is largest at x = 3


def test_gradcheck_requires_float64():
    with pytest.raises(DTypeError, match="input 0 must be float64"):
        mg.gradcheck(lambda t: t * 2, [mg.randn(2, requires_grad=True)])


def test_dot_graph_has_ops_shapes_and_grad_norms():
    w = mg.tensor(np.ones((3, 2)), dtype="float64", requires_grad=True)
    x = mg.tensor(np.ones((4, 3)), dtype="float64")
    with mg.stage("ffn"):
        loss = (x @ w).tanh().sum()
    dot = viz.backward_graph(loss, names={w: "w"})
    assert dot.startswith("digraph") and "MatMul" in dot and "Tanh" in dot and "[ffn]" in dot
    assert "(3, 2)" in dot and "w\\n" in dot
    expected = np.linalg.norm(w.grad.numpy())
    assert f"|grad| {expected:.4g}" in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_svg(tmp_path):
    x = mg.randn(2, requires_grad=True)
    out = viz.render(viz.to_dot((x * 2).sum()), tmp_path / "g.svg")
    assert "<svg" in open(out).read()
