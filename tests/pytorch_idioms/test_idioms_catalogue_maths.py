"""The PyTorch-idiom catalogue (see test_idioms_catalogue.py), continued: the maths around
the tensor that the first files touch lightly -- torch.Tensor's legacy constructor, integer
tensors in floating-point functions, clamp's dtypes, index_add_/scatter with a value,
unique/median/diag, F.pad's modes, roll/flip, remainders, custom autograd.Functions in
their other shapes, GradScaler, RMSprop's variants and the schedulers. At the end, the
deliberate differences (tests/ of their own, not idioms: torch returns, minigrad refuses
with a message that says what to write)."""
import math

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom

import minigrad as mg
from minigrad.errors import MinigradError


# ============================================================================ constructors, dtypes
@idiom(expect=("float32", [1.0, 2.0, 3.0], (2, 3), "float32"))
def legacy_tensor_constructor(lib):
    t = lib.Tensor([1, 2, 3])
    shape = lib.Tensor(2, 3)                # uninitialised in torch: compare shape and dtype
    return str(t.dtype).replace("torch.", ""), t, tuple(shape.shape), \
        str(shape.dtype).replace("torch.", "")


@idiom(expect=([1.0, 2.0], "float32", "float32", "float32", "float32"))
def integer_tensors_in_floating_point_functions(lib):
    i = lib.tensor([1, 4])
    return (i.sqrt(), str(i.exp().dtype).replace("torch.", ""),
            str(lib.sigmoid(i).dtype).replace("torch.", ""),
            str(i.tanh().dtype).replace("torch.", ""), str(lib.sin(i).dtype).replace("torch.", ""))


@idiom(expect=([1.0, 1.5], [1, 1], [0.5, 2.0, 2.0]))
def clamp_dtypes_and_tensor_bounds(lib):
    i = lib.tensor([1, 2])
    x = lib.tensor([0.0, 3.0, 2.0])
    return (i.clamp(0.5, 1.5), i.clamp(0, 1),
            x.clamp(min=lib.tensor([0.5, 1.0, 1.5]), max=lib.tensor(2.0)))


@idiom
def clamp_with_a_tensor_and_a_number_raises(lib):
    return lib.zeros(2).clamp(min=lib.tensor([0.5, 1.0]), max=2.0)


@idiom(expect=([2, 4], [2, 4], "int64", [1, 1]))
def integer_powers_and_division(lib):
    e = lib.tensor([1, 2])
    return (2 ** e, lib.tensor([2, 2]) ** e, str((e ** 2).dtype).replace("torch.", ""),
            lib.tensor([5, 3]) // lib.tensor([3, 2]))


@idiom(expect=([7.0, 7.0], "bool", [[1, 1]], "float32"))
def like_constructors(lib):
    x = lib.zeros(2)
    return (lib.full_like(x, 7), str(lib.zeros_like(x, dtype=lib.bool).dtype).replace(
        "torch.", ""), lib.ones_like(lib.zeros(1, 2, dtype=lib.long)),
        str(x.new_tensor([1, 2]).dtype).replace("torch.", ""))


@idiom(expect=(4, False, "cpu", (3,), True))
def tensor_properties(lib):
    x = lib.zeros(3)
    n = lib.normal(0.0, 1.0, size=(3,))
    return x.element_size(), x.is_cuda, x.device.type, tuple(n.shape), lib.equal(x, x.clone())


# ======================================================================================= selection
@idiom(expect=([4.0, 0.0, 2.0], [[0.0, 0.5], [0.5, 0.0]]))
def index_add_and_scatter_with_a_value(lib):
    a = lib.zeros(3).index_add_(0, lib.tensor([0, 2, 0]), lib.tensor([1.0, 2.0, 3.0]))
    b = lib.zeros(2, 2).scatter_(1, lib.tensor([[1], [0]]), 0.5)
    return a, b


@idiom(expect=([1, 2, 3], [[1, 0], [2, 0]], ([2.0, 5.0], [2, 2])))
def unique_inverse_and_median_with_dim(lib):
    u, inverse = lib.unique(lib.tensor([[2, 1], [3, 1]]), return_inverse=True)
    m = lib.tensor([[0.5, 3.0, 2.0], [2.0, 9.0, 5.0]]).median(dim=1)
    return u, inverse, (m.values, m.indices)


@idiom(expect=([[1.0, 0.0], [0.0, 2.0]], [0.0, 4.0, 8.0], 12.0, [[0.0, 1.0, 0.0], [0.0, 0.0, 2.0],
                                                              [0.0, 0.0, 0.0]]))
def diag_and_trace(lib):
    m = lib.arange(9.0).view(3, 3)
    return (lib.diag(lib.tensor([1.0, 2.0])), m.diag(), m.trace().item(),
            lib.diag(lib.tensor([1.0, 2.0]), 1))


@idiom(expect=([[3.0, 4.0, 1.0, 2.0], [7.0, 8.0, 5.0, 6.0]], [[4.0, 1.0, 2.0, 3.0]],
               [[0.0, 1.0, 0.0, 0.0]]))
def roll_and_flip_with_gradients(lib):
    x = lib.arange(1.0, 9.0).view(2, 4)
    y = lib.arange(1.0, 5.0).view(1, 4)
    w = lib.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    (w.flip(1) * lib.tensor([[0.0, 0.0, 1.0, 0.0]])).sum().backward()
    return lib.roll(x, -2, 1), y.roll(1), w.grad


@idiom(expect=([-1.0, -2.0], [2.0, -2.0], [1, 2], [-2.0, 1.0]))
def remainders_with_negative_divisors(lib):
    return (lib.tensor([5.0, -5.0]) % -3, lib.fmod(lib.tensor([5.0, -5.0]), 3),
            lib.remainder(lib.tensor([-5, 5]), 3), lib.tensor([-3.0, 3.0]) // 2.5)


@idiom
def integer_remainder_by_zero_raises(lib):
    return lib.tensor([5, 3]) % 0


@idiom(expect=([[0.0, 0.0, 1.0, 2.0, 0.0]], [[1.0, 0.0, 1.0, 2.0, 1.0]],
               [[0.0, 0.0, 1.0, 2.0, 2.0]], [[2.0, 0.0, 1.0, 2.0, 0.0]], (1, 1, 4, 5), 2.0))
def pad_modes(lib):
    F = lib.nn.functional
    x = lib.arange(3.0).view(1, 1, 3)
    img = lib.ones(1, 1, 2, 3)
    padded = F.pad(img, (1, 1, 1, 1), value=2.0)
    return (F.pad(x, (1, 1))[0], F.pad(x, (1, 1), mode='reflect')[0],
            F.pad(x, (1, 1), mode='replicate')[0], F.pad(x, (1, 1), mode='circular')[0],
            tuple(padded.shape), padded[0, 0, 0, 0].item())


@idiom(expect=([[0.0, 1.0], [0.0, 1.0]], [3.0, 3.0]))
def in_place_through_a_column_view(lib):
    x = lib.ones(2, 2)
    x[:, 0].zero_()
    y = lib.ones(2)
    y.add_(x[0, 1] * 2)
    return x, y


@idiom(expect=([1.0, 0.0, 1.0], 2, [False, True, False], [True, False, False]))
def bool_mask_arithmetic(lib):
    mask = lib.tensor([1.0, -1.0, 2.0]) > 0
    other = lib.tensor([True, False, False])
    return mask.float(), mask.long().sum().item(), ~mask, mask & other


# ================================================================================ custom Functions
def _mul_constant(lib):
    class MulConstant(lib.autograd.Function):
        @staticmethod
        def forward(ctx, tensor, constant):
            ctx.constant = constant
            return tensor * constant

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.constant, None
    return MulConstant


@idiom(expect=([1.5, 3.0], [3.0, 3.0], (True, False)))
def custom_function_with_a_constant_argument(lib):
    x = lib.tensor([0.5, 1.0], requires_grad=True)
    seen = []

    class Spy(lib.autograd.Function):
        @staticmethod
        def forward(ctx, t, k):
            seen.append(ctx.needs_input_grad)
            return t * k

        @staticmethod
        def backward(ctx, g):
            return g * 2, None

    y = _mul_constant(lib).apply(x, 3.0)
    y.sum().backward()
    Spy.apply(x, 2)
    return y.detach(), x.grad, seen[0]


@idiom(expect=[2.0, 4.0])
def custom_function_in_the_setup_context_style(lib):
    class Square(lib.autograd.Function):
        @staticmethod
        def forward(x):
            return x * x

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, grad_output):
            x, = ctx.saved_tensors
            return 2 * x * grad_output

    x = lib.tensor([1.0, 2.0], requires_grad=True)
    Square.apply(x).sum().backward()
    return x.grad


@idiom
def custom_function_returning_too_few_gradients_raises(lib):
    class Bad(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g

    a = lib.ones(2, requires_grad=True)
    Bad.apply(a, lib.ones(2, requires_grad=True)).sum().backward()


@idiom
def custom_function_saved_tensor_modified_in_place_raises(lib):
    class Exp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            out = x.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            out, = ctx.saved_tensors
            return g * out

    x = lib.ones(2, requires_grad=True)
    y = Exp.apply(x * 1)
    y.add_(1)                   # the output Exp saved for backward, changed in place
    y.sum().backward()
    return x.grad


# ============================================================================= optimizers, scalers
def _steps(lib, make, n=4):
    w = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = make([w])
    for _ in range(n):
        opt.zero_grad()
        ((w - 0.5) ** 2).sum().backward()
        opt.step()
    return w.detach()


@idiom(rtol=1e-5)
def rmsprop_momentum_centered_weight_decay(lib):
    return (_steps(lib, lambda p: lib.optim.RMSprop(p, lr=0.01, momentum=0.9)),
            _steps(lib, lambda p: lib.optim.RMSprop(p, lr=0.01, centered=True, alpha=0.9,
                                                     weight_decay=0.1)))


@idiom(rtol=1e-6)
def grad_scaler_on_the_cpu(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    opt = lib.optim.SGD([w], lr=0.1)
    scaler = lib.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
    scales = []
    for k in range(3):
        opt.zero_grad()
        loss = (w * w).sum() * (float("inf") if k == 1 else 1.0)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return w.detach(), scales


@idiom(expect=([1.0, 0.95, 0.9025], [0.1, 0.1, 0.01, 0.01, 0.001], [1.0, 0.5, 0.25]))
def lambda_multistep_exponential_schedulers(lib):
    S = lib.optim.lr_scheduler

    def run(make, n):
        opt = lib.optim.SGD([lib.zeros(1, requires_grad=True)], lr=1.0 if n == 3 else 0.1)
        sched = make(opt)
        out = []
        for _ in range(n):
            out.append(round(sched.get_last_lr()[0], 6))
            opt.step()
            sched.step()
        return out
    return (run(lambda o: S.LambdaLR(o, lr_lambda=lambda epoch: 0.95 ** epoch), 3),
            run(lambda o: S.MultiStepLR(o, milestones=[2, 4], gamma=0.1), 5),
            run(lambda o: S.ExponentialLR(o, gamma=0.5), 3))


@idiom(expect=(2, [0.5, 0.1]))
def optimizer_add_param_group(lib):
    a = lib.zeros(1, requires_grad=True)
    b = lib.zeros(1, requires_grad=True)
    opt = lib.optim.SGD([a], lr=0.5)
    opt.add_param_group({'params': [b], 'lr': 0.1})
    return len(opt.param_groups), [g['lr'] for g in opt.param_groups]


# ============================================================================== more everyday API
@idiom(expect=([[True, False], [True, True]], "bool", [2.0, 2.0]))
def tril_of_a_bool_mask_and_no_grad_bare(lib):
    m = lib.ones(2, 2, dtype=lib.bool).tril()

    @lib.no_grad
    def double(t):
        return t * 2

    out = double(lib.ones(2, requires_grad=True))
    assert not out.requires_grad
    return m, str(m.dtype).replace("torch.", ""), out


@idiom
def requires_grad_on_an_integer_tensor_raises(lib):
    x = lib.tensor([1, 2, 3])
    x.requires_grad = True


@idiom
def requires_grad_false_on_a_non_leaf_raises(lib):
    y = lib.ones(2, requires_grad=True) * 2
    y.requires_grad = False


@idiom(expect=(3.0, (2,), [[1.0, 1.0], [2.0, 2.0]], [1, 1, 2, 2], [[1.0, 1.0], [1.0, 1.0]]))
def sum_dtype_squeeze_dims_repeat_interleave(lib):
    x = lib.tensor([1, 2])
    kv = lib.tensor([[1.0], [2.0]])
    return (x.sum(dtype=lib.float32).item(), tuple(lib.zeros(1, 2, 1).squeeze((0, 2)).shape),
            kv.repeat_interleave(2, dim=1), lib.repeat_interleave(x, 2),
            lib.ones(1, 2).repeat_interleave(lib.tensor([2]), dim=0))


@idiom(expect=([5.0, 10.0], 7.0, 5.0, (1.5275252, 2.3333333)))
def linalg_norms_and_std_mean(lib):
    m = lib.tensor([[3.0, 4.0], [6.0, 8.0]])
    std, mean = lib.std_mean(lib.tensor([1.0, 2.0, 4.0]))
    return (lib.linalg.norm(m, dim=1), lib.linalg.vector_norm(lib.tensor([3.0, 4.0]), ord=1),
            lib.linalg.norm(lib.tensor([3.0, 4.0])).item(), (std.item(), mean.item()))


@idiom(expect=("float16", False, [[1.0, 1.0]], [1.0, -1.0]))
def half_from_pretrained_clip_grad_value(lib):
    m = lib.nn.Linear(2, 2).half()
    emb = lib.nn.Embedding.from_pretrained(lib.ones(3, 2))
    w = lib.zeros(2, requires_grad=True)
    (w * lib.tensor([3.0, -4.0])).sum().backward()
    lib.nn.utils.clip_grad_value_([w], 1.0)
    return (str(m.weight.dtype).replace("torch.", ""), emb.weight.requires_grad,
            emb(lib.tensor([2])), w.grad)


@idiom(expect=((3, 2, 2), [1.0, 1.0], [0.0, 0.0]))
def unflatten_cosine_pairwise_modules(lib):
    nn = lib.nn
    return (tuple(nn.Unflatten(1, (2, 2))(lib.ones(3, 4)).shape),
            nn.CosineSimilarity(dim=1)(lib.ones(2, 3), lib.ones(2, 3) * 2),
            nn.PairwiseDistance(eps=0.0)(lib.ones(2, 3), lib.ones(2, 3)))


@idiom(expect=([0.1, 0.05, 0.1, 0.085355, 0.05, 0.014645],
               [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]))
def warm_restarts_and_reduce_on_plateau(lib):
    S = lib.optim.lr_scheduler
    opt = lib.optim.SGD([lib.zeros(1, requires_grad=True)], lr=0.1)
    sched = S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    seen = []
    for _ in range(6):
        seen.append(round(opt.param_groups[0]['lr'], 6))
        opt.step()
        sched.step()
    opt2 = lib.optim.SGD([lib.zeros(1, requires_grad=True)], lr=1.0)
    plateau = S.ReduceLROnPlateau(opt2, factor=0.5, patience=1)
    lrs = []
    for val_loss in [1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.6]:
        plateau.step(val_loss)
        lrs.append(opt2.param_groups[0]['lr'])
    return seen, lrs


@idiom(expect=(True, None))
def default_dtype_and_print_options(lib):
    return lib.get_default_dtype() == lib.float32, lib.set_printoptions(precision=4)



@idiom(expect=(True, True, True, True))
def the_import_forms_of_scripts(lib):
    import importlib

    def module(name):
        return importlib.import_module(f"{lib.__name__}.{name}")

    F = module("nn.functional")                 # import torch.nn.functional as F
    amp = module("cuda.amp")                    # from torch.cuda.amp import GradScaler
    return (F is lib.nn.functional and hasattr(F, "relu"), hasattr(amp, "GradScaler"),
            hasattr(module("utils.data"), "DataLoader") and hasattr(module("nn.init"),
                                                                      "normal_"),
            hasattr(module("optim.lr_scheduler"), "StepLR"))


@idiom
def cross_entropy_with_int32_targets_raises(lib):
    return lib.nn.functional.cross_entropy(lib.ones(2, 3), lib.tensor([0, 1], dtype=lib.int32))


@idiom
def binary_cross_entropy_with_integer_targets_raises(lib):
    return lib.nn.functional.binary_cross_entropy_with_logits(lib.zeros(2), lib.tensor([1, 0]))


@idiom
def where_with_an_integer_condition_raises(lib):
    return lib.where(lib.tensor([1, 0]), lib.ones(2), lib.zeros(2))


@idiom
def gelu_of_an_integer_tensor_raises(lib):
    return lib.nn.functional.gelu(lib.tensor([1, 2]))


@idiom
def argmax_of_a_bool_tensor_raises(lib):
    return lib.tensor([False, True]).argmax()


@idiom(expect=([0, 2], (4, 2, 3), True))
def uint8_mask_layer_norm_over_two_dims_variable(lib):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        picked = lib.arange(3)[lib.tensor([1, 0, 1], dtype=lib.uint8)]
    ln = lib.nn.LayerNorm((2, 3))
    v = lib.autograd.Variable(lib.ones(2), requires_grad=True)
    return picked, tuple(ln(lib.arange(24.0).view(4, 2, 3)).shape), v.requires_grad


@idiom(expect=([0, 3, 5], "bool", [1, 0, 1], 203, "int64", [True, False, True]))
def small_integer_and_bool_dtypes(lib):
    u8 = lib.tensor([0, 3, 200], dtype=lib.uint8)
    mask = lib.tensor([True, False, True])
    s = u8.sum()
    return (lib.minimum(u8, lib.tensor([1, 4, 5])), str(mask.clone().dtype).replace(
        "torch.", ""), mask.square(), s.item(), str(s.dtype).replace("torch.", ""),
        mask.sign())


@idiom
def floor_division_of_a_bool_tensor_raises(lib):
    return lib.tensor([True, False]) // 2


@idiom
def topk_of_a_bool_tensor_raises(lib):
    return lib.tensor([True, False]).topk(1)


@idiom(rtol=1e-5)
def optimizer_implementation_flags(lib):
    return (_steps(lib, lambda p: lib.optim.AdamW(p, lr=0.1, foreach=False, fused=False)),
            _steps(lib, lambda p: lib.optim.SGD(p, lr=0.1, momentum=0.5, foreach=None)))

@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)


# ========================================================================== deliberate differences
# torch returns for these; minigrad cannot reasonably match and refuses with a message that
# says what to write instead (docs/pytorch.md lists them with the reasons).
@pytest.mark.parametrize("code, words", [
    (lambda: mg.nn.LSTM(4, 4), ["LSTM", "nn.Linear", "loop"]),
    (lambda: mg.nn.MultiheadAttention(8, 2), ["scaled_dot_product_attention"]),
    (lambda: mg.nn.functional.interpolate, ["interpolate", "docs/pytorch.md"]),
    (lambda: mg.ones(2, dtype=mg.bfloat16), ["bfloat16", "float32"]),
    (lambda: mg.amp.autocast("cpu", dtype=mg.float16).__enter__(), ["autocast",
                                                                     "nullcontext"]),
    (lambda: mg.multinomial(mg.ones(3), 1, generator=object()), ["generator", "manual_seed"]),
    (lambda: mg.ones(2, requires_grad=True).sum().backward(create_graph=True),
     ["create_graph"]),
    (lambda: mg.ones(2).type("torch.FloatTensor"), ["x.type(mg.float32)"]),
    (lambda: mg.nn.Linear(2, 2).register_full_backward_hook(print), ["register_hook"]),
    (lambda: mg.nn.functional.max_pool2d(mg.ones(1, 1, 3, 3), 2, ceil_mode=True),
     ["ceil_mode", "F.pad"]),
])
def test_deliberate_differences_are_clear_errors(code, words):
    with pytest.raises((MinigradError, AttributeError)) as info:
        code()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
