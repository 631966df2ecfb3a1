"""PyTorch idioms of issue 16's items 5 and 6, written once in torch spelling and run with
minigrad and (where installed) torch by the harness in idioms.py: reductions with indices,
the module-level functions, tensor methods, einsum, losses, nn modules, init and the lr
schedulers. ``expect`` holds the value worked out by hand or with NumPy."""
import math

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom

X = [[0.5, 2.0, -1.0], [3.0, 0.0, 1.5]]            # distinct values: no ties


# ----------------------------------------------------------------------------- max / min
@idiom(expect=[1, 0])
def max_dim_index_1_is_the_argmax(lib):
    return lib.tensor(X).max(1)[1]                      # the classic accuracy line


@idiom(expect=([2.0, 3.0], [1, 0]))
def max_dim_unpacks_to_values_and_indices(lib):
    values, idx = lib.tensor(X).max(dim=1)
    return values.tolist(), idx.tolist()


@idiom(expect=3.0)
def max_without_dim_is_0d(lib):
    return lib.tensor(X).max()


@idiom(expect=[[2.0], [3.0]])
def torch_max_with_keepdim(lib):
    return lib.max(lib.tensor(X), 1, keepdim=True).values


@idiom(expect=[0, 1, 0])
def min_dim_indices(lib):
    return lib.tensor(X).min(dim=0).indices


@idiom(expect=[[1.0, 2.0, 1.0], [3.0, 1.0, 1.5]])
def max_of_two_tensors_is_elementwise(lib):
    return lib.max(lib.tensor(X), lib.ones(2, 3))


@idiom(expect=[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
def max_dim_gradient_goes_to_the_maximum(lib):
    x = lib.tensor(X, requires_grad=True)
    x.max(dim=1).values.sum().backward()
    return x.grad


@idiom
def max_over_two_dims_is_an_error(lib):
    return lib.tensor(X).max(dim=(0, 1))


@idiom(expect=[[1], [0]])
def argmax_keepdim(lib):
    return lib.tensor(X).argmax(dim=1, keepdim=True)


@idiom(expect=3)
def argmax_without_dim_is_the_flat_index(lib):
    return lib.tensor(X).argmax().item()


@idiom(expect=[2.0, 3.0])
def amax_over_a_dim(lib):
    return lib.amax(lib.tensor(X), dim=1)


# ----------------------------------------------------------------------------- sort / topk
@idiom(expect=([[2.0, 0.5, -1.0], [3.0, 1.5, 0.0]], [[1, 0, 2], [0, 2, 1]]))
def sort_descending(lib):
    v, i = lib.tensor(X).sort(dim=1, descending=True)
    return v.tolist(), i.tolist()


@idiom(expect=[[0, 1, 0], [1, 0, 1]])
def sort_indices_along_dim_0(lib):
    return lib.sort(lib.tensor(X), dim=0).indices


@idiom(expect=[1, 3, 0, 2, 4])
def stable_sort_keeps_equal_values_in_order(lib):
    return lib.tensor([2, 1, 2, 1, 2]).sort(stable=True).indices


@idiom(expect=([[2.0, 0.5], [3.0, 1.5]], [[1, 0], [0, 2]]))
def topk_of_logits(lib):
    v, i = lib.tensor(X).topk(2)
    return v.tolist(), i.tolist()


@idiom(expect=[[-1.0], [0.0]])
def topk_smallest(lib):
    return lib.topk(lib.tensor(X), 1, dim=-1, largest=False).values


@idiom
def topk_larger_than_the_dim_is_an_error(lib):
    return lib.tensor(X).topk(4)


@idiom(expect=[[1, 0, 2], [0, 2, 1]])
def argsort_descending(lib):
    return lib.tensor(X).argsort(dim=1, descending=True)


@idiom(expect=[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
def topk_values_carry_the_gradient(lib):
    x = lib.tensor(X, requires_grad=True)
    x.topk(1, dim=1).values.sum().backward()
    return x.grad


# ----------------------------------------------------------------------------- reductions
@idiom(expect=[[0.5, 2.5, 1.5], [3.0, 3.0, 4.5]])
def cumsum_along_rows(lib):
    return lib.tensor(X).cumsum(dim=1)


@idiom(expect=[1, 1, 2])
def cumsum_of_a_bool_mask_counts(lib):
    return lib.cumsum(lib.tensor([True, False, True]), 0)


@idiom(expect=[-1.0, 0.0])
def prod_along_a_dim(lib):
    return lib.tensor(X).prod(1)


@idiom(expect=[0.0, 8.0, 0.0])
def prod_gradient_with_a_zero(lib):
    x = lib.tensor([2.0, 0.0, 4.0], requires_grad=True)
    x.prod().backward()
    return x.grad


@idiom(expect=[math.log(math.exp(0.5) + math.exp(2.0) + math.exp(-1.0)),
               math.log(math.exp(3.0) + 1 + math.exp(1.5))])
def logsumexp_along_classes(lib):
    return lib.logsumexp(lib.tensor(X), dim=1)


@idiom(expect=math.sqrt(0.25 + 4 + 1 + 9 + 0 + 2.25))
def norm_default_is_frobenius(lib):
    return lib.tensor(X).norm()


@idiom(expect=[3.5, 2.0, 2.5])
def norm_p1_along_dim_0(lib):
    return lib.tensor(X).norm(p=1, dim=0)


@idiom(expect=[2.0, 3.0])
def norm_inf_per_row(lib):
    return lib.norm(lib.tensor(X), p=float("inf"), dim=1)


@idiom(expect=[0.0, 0.0])
def norm_gradient_at_zero_is_zero(lib):
    x = lib.zeros(2, requires_grad=True)
    x.norm().backward()
    return x.grad


@idiom(expect=[np.var(X[0], ddof=1), np.var(X[1], ddof=1)])
def var_second_positional_is_unbiased(lib):
    return lib.tensor(X).var(1, True)


@idiom(expect=np.std(X))
def std_unbiased_false(lib):
    return lib.tensor(X).std(unbiased=False)


@idiom(expect=[[np.std(X[0])], [np.std(X[1])]])
def std_correction_0_keepdim(lib):
    return lib.std(lib.tensor(X), dim=1, correction=0, keepdim=True)


@idiom(expect=[True, False])
def any_along_a_dim(lib):
    return lib.tensor([[0.0, 1.0], [0.0, 0.0]]).any(dim=1)


@idiom(expect=False)
def all_of_everything(lib):
    return lib.tensor([[1.0, 1.0], [0.0, 1.0]]).all().item()


# ----------------------------------------------------------------------------- functions
@idiom(expect=np.exp(X))
def torch_exp(lib):
    return lib.exp(lib.tensor(X))


@idiom(expect=np.exp(X) / np.exp(X).sum(1, keepdims=True))
def torch_softmax_with_dim(lib):
    return lib.softmax(lib.tensor(X), dim=-1)


@idiom(expect=np.log(np.exp(X) / np.exp(X).sum(0, keepdims=True)))
def log_softmax_method(lib):
    return lib.tensor(X).log_softmax(0)


@idiom(expect=np.array(X) @ np.array(X).T)
def torch_matmul(lib):
    x = lib.tensor(X)
    return lib.matmul(x, x.T)


@idiom(expect=[[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
def causal_mask_with_tril(lib):
    return lib.tril(lib.ones(3, 3))                       # nanoGPT's bias buffer


@idiom(expect=[[0.0, 2.0, -1.0], [0.0, 0.0, 1.5]])
def triu_above_the_diagonal(lib):
    return lib.tensor(X).triu(diagonal=1)


@idiom(expect=np.eye(2, 3))
def eye_rectangular(lib):
    return lib.eye(2, 3)


@idiom(expect=[0.0, 0.25, 0.5, 0.75, 1.0])
def linspace_both_ends(lib):
    return lib.linspace(0, 1, 5)


@idiom(expect=[9.0, 1.0, 2.0])
def from_numpy_shares_memory_and_keeps_float64(lib):
    a = np.arange(3.0)
    t = lib.from_numpy(a)
    a[0] = 9.0
    return t


@idiom(expect=[0, 1, 2, 3, 4])
def multinomial_without_replacement_draws_each_once(lib):
    return sorted(lib.multinomial(lib.ones(5), 5).tolist())


@idiom(expect=(2, 3))
def multinomial_rows_shape(lib):
    return tuple(lib.multinomial(lib.tensor([[0.2, 0.8], [0.5, 0.5]]), 3,
                                 replacement=True).shape)


# ----------------------------------------------------------------------------- einsum
@idiom(expect=np.array(X) @ np.array(X).T)
def einsum_matmul(lib):
    x = lib.tensor(X)
    return lib.einsum("ij,kj->ik", x, x)


@idiom(expect=3.0)
def einsum_trace(lib):
    return lib.einsum("ii", lib.eye(3))


@idiom(expect=np.outer([1.0, 2.0], [3.0, 4.0, 5.0]))
def einsum_outer(lib):
    return lib.einsum("i,j->ij", lib.tensor([1.0, 2.0]), lib.tensor([3.0, 4.0, 5.0]))


@idiom(expect=np.ones((2, 3, 4)).transpose(0, 2, 1) * 2)
def einsum_batched_transpose(lib):
    return lib.einsum("bij->bji", lib.ones(2, 3, 4) * 2)


@idiom(expect=[[3.0, 7.0], [3.0, 7.0]])                  # ones @ b.T: b's row sums
def einsum_gradient(lib):
    a = lib.ones(2, 2, requires_grad=True)
    b = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
    lib.einsum("ij,jk->ik", a, b).sum().backward()
    return a.grad


# ----------------------------------------------------------------------------- methods
@idiom(expect=((3, 2), (3, 2), 2, (2, 3), 3, 6))
def transpose_dim_size_numel(lib):
    x = lib.tensor(X)
    return tuple(x.T.shape), tuple(x.t().shape), x.dim(), tuple(x.size()), x.size(-1), x.numel()


@idiom(expect=(4, 3, 2))
def mT_transposes_a_batch(lib):
    return tuple(lib.ones(4, 2, 3).mT.shape)


@idiom
def t_of_a_3d_tensor_is_an_error(lib):
    return lib.ones(2, 3, 4).t()


@idiom(expect=(2, 12))
def flatten_from_dim_1(lib):
    return tuple(lib.ones(2, 3, 4).flatten(1).shape)


@idiom(expect=np.tile(X, (2, 2)))
def repeat_tiles(lib):
    return lib.tensor(X).repeat(2, 2)


@idiom(expect=[[2.0, 0.5], [1.5, 1.5]])
def gather_picks_along_a_dim(lib):
    return lib.tensor(X).gather(1, lib.tensor([[1, 0], [2, 2]]))


@idiom(expect=[[-1.0, 0.5], [1.5, 3.0]])
def index_select_columns(lib):
    return lib.tensor(X).index_select(1, lib.tensor([2, 0]))


@idiom(expect=([0.5, 2.0, -1.0], [3.0, 0.0, 1.5]))
def unbind_rows(lib):
    a, b = lib.tensor(X).unbind(0)
    return a.tolist(), b.tolist()


@idiom(expect=[[2.0, -1.0], [0.0, 1.5]])
def narrow_columns(lib):
    return lib.tensor(X).narrow(1, 1, 2)


@idiom(expect=[2.0, 3.0, 1.5])
def masked_select_positives(lib):
    x = lib.tensor(X)
    return x.masked_select(lib.tensor([[False, True, False], [True, False, True]]))


@idiom(expect=(2, 2, 3))
def expand_as_a_batch(lib):
    return tuple(lib.tensor(X).expand_as(lib.ones(2, 2, 3)).shape)


# ----------------------------------------------------------------------------- losses
@idiom(expect=math.log(3))
def cross_entropy_n_c_d_layout(lib):
    logits = lib.zeros(2, 3, 4)                     # (N, C, d): classes in dim 1
    return lib.nn.functional.cross_entropy(logits, lib.zeros(2, 4, dtype=lib.int64)).item()


@idiom
def cross_entropy_of_b_t_v_logits_needs_a_view(lib):
    logits = lib.zeros(2, 5, 7)                      # (B, T, V) as a GPT gives them
    return lib.nn.functional.cross_entropy(logits, lib.zeros(2, 5, dtype=lib.int64))


@idiom(expect=[math.log(3)] * 4)
def cross_entropy_gpt_style_view(lib):
    logits, targets = lib.zeros(2, 2, 3), lib.zeros(2, 2, dtype=lib.int64)
    return lib.nn.functional.cross_entropy(logits.view(-1, 3), targets.view(-1),
                                           reduction="none")


_LOGP = np.log(np.exp([2.0, 0.0, 0.0]) / (np.exp(2.0) + 2))


@idiom(expect=0.9 * -_LOGP[0] + 0.1 * -_LOGP.mean())      # (1 - eps) nll + eps uniform term
def cross_entropy_label_smoothing(lib):
    logits = lib.tensor([[2.0, 0.0, 0.0]])
    return lib.nn.functional.cross_entropy(logits, lib.tensor([0]), label_smoothing=0.1).item()


@idiom(expect=math.log(2))
def cross_entropy_ignore_index(lib):
    logits = lib.tensor([[0.0, 0.0], [5.0, -5.0]])
    return lib.nn.functional.cross_entropy(logits, lib.tensor([1, -100])).item()


@idiom(expect=(0.625, 1.5))
def mse_and_l1_losses(lib):
    F = lib.nn.functional
    a, b = lib.tensor([1.0, 2.0]), lib.tensor([0.0, 2.5])
    return F.mse_loss(a, b).item(), F.l1_loss(a, b, reduction="sum").item()


@idiom(expect=0.0)
def nll_of_log_softmax_equals_cross_entropy(lib):
    F = lib.nn.functional
    z, t = lib.tensor(X), lib.tensor([1, 0])
    return round(F.nll_loss(F.log_softmax(z, dim=1), t).item() - F.cross_entropy(z, t).item(),
                 6)


@idiom(expect=[1e4, math.log(2)], rtol=1e-4)
def bce_with_logits_is_stable(lib):
    F = lib.nn.functional
    return F.binary_cross_entropy_with_logits(lib.tensor([1e4, 0.0]), lib.tensor([0.0, 1.0]),
                                              reduction="none")


@idiom(expect=-math.log(0.8))
def binary_cross_entropy_of_probabilities(lib):
    return lib.nn.functional.binary_cross_entropy(lib.tensor([0.8]), lib.tensor([1.0])).item()


@idiom(expect=math.log(3))
def cross_entropy_loss_module(lib):
    return lib.nn.CrossEntropyLoss()(lib.zeros(4, 3), lib.tensor([0, 1, 2, 1])).item()


@idiom(expect=(2, 12))
def flatten_softmax_identity_modules(lib):
    model = lib.nn.Sequential(lib.nn.Identity(), lib.nn.Flatten(), lib.nn.Softmax(dim=1))
    return tuple(model(lib.ones(2, 3, 4)).shape)


# ----------------------------------------------------------------------------- init
@idiom(expect=(math.sqrt(2.0), 5.0 / 3))
def calculate_gain_values(lib):
    return lib.nn.init.calculate_gain("relu"), lib.nn.init.calculate_gain("tanh")


@idiom(expect=True)
def kaiming_uniform_stays_in_its_bound(lib):
    w = lib.empty(64, 32)
    lib.nn.init.kaiming_uniform_(w, nonlinearity="relu")
    return w.abs().max().item() <= math.sqrt(2) * math.sqrt(3 / 32)


@idiom(expect=True)
def trunc_normal_stays_in_a_b(lib):
    w = lib.empty(100, 100)
    lib.nn.init.trunc_normal_(w, std=0.5, a=-0.3, b=0.3)
    return w.abs().max().item() <= 0.3


# ----------------------------------------------------------------------------- schedulers
def _lrs(lib, make, steps=8):
    p = lib.nn.Parameter(lib.zeros(2))
    opt = lib.optim.SGD([p], lr=1.0)
    sched = make(opt, lib.optim.lr_scheduler)
    out = []
    for _ in range(steps):
        out.append(round(opt.param_groups[0]["lr"], 10))
        opt.step()
        sched.step()
    return out


@idiom(expect=[1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
def step_lr(lib):
    return _lrs(lib, lambda o, S: S.StepLR(o, step_size=2, gamma=0.1))


@idiom(expect=[1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
def multi_step_lr(lib):
    return _lrs(lib, lambda o, S: S.MultiStepLR(o, milestones=[2, 5], gamma=0.5))


@idiom(expect=[round(0.5 * (1 + math.cos(math.pi * k / 4)), 10) for k in range(8)])
def cosine_annealing_lr(lib):
    return _lrs(lib, lambda o, S: S.CosineAnnealingLR(o, T_max=4))


@idiom(expect=[0.25, 0.5, 0.75, 1.0, 1.0, 0.9, 0.81, 0.729])
def warmup_then_decay_with_sequential_lr(lib):
    def make(o, S):
        warm = S.LinearLR(o, start_factor=0.25, total_iters=3)
        decay = S.ExponentialLR(o, gamma=0.9)
        return S.SequentialLR(o, [warm, decay], milestones=[4])
    return _lrs(lib, make)


@idiom(expect=[0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0])
def linear_lr_warmup(lib):
    return _lrs(lib, lambda o, S: S.LinearLR(o, start_factor=0.4, total_iters=3))


@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)
