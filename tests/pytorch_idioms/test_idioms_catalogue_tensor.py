"""The PyTorch-idiom catalogue (see test_idioms_catalogue.py), continued: the tensor itself --
indexing, broadcasting, creation, shapes, dtypes and promotion, reductions, sort/gather/
scatter, the elementwise maths and matmul, with the errors users hit there."""
import math

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom

X = [[0.5, 2.0, -1.0], [3.0, 0.0, 1.5]]            # distinct values: no ties


def _F(lib):
    return lib.nn.functional


# ======================================================================================== indexing
@idiom(expect=((3, 1), (1, 3), (3,), [3.0, 3.0]))
def index_none_and_ellipsis(lib):
    x = lib.tensor([1.0, 2.0, 3.0])
    y = lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 3.0]]).T
    return tuple(x[:, None].shape), tuple(x[None, :].shape), tuple(y[..., -1].shape), y[-1, ...]


@idiom(expect=([[3.0, 0.0, 1.5], [0.5, 2.0, -1.0], [3.0, 0.0, 1.5]], [2.0, 1.5]))
def index_with_a_long_tensor(lib):
    x = lib.tensor(X)
    idx = lib.tensor([1, 0, 1])
    return x[idx], x[lib.tensor([0, 1]), lib.tensor([1, 2])]


@idiom(expect=(2, 2, 3))
def index_with_a_2d_index_tensor(lib):
    x = lib.tensor(X)
    idx = lib.tensor([[0, 1], [1, 1]])
    return tuple(x[idx].shape)


@idiom(expect=([0.5, 2.0, 3.0, 1.5], [[0.5, 2.0, 0.0], [3.0, 0.0, 1.5]]))
def boolean_select_and_set(lib):
    x = lib.tensor(X)
    pos = x[x > 0]
    x[x < 0] = 0
    return pos, x


@idiom(expect=[[9.0, 9.0, 9.0], [3.0, 0.0, 1.5]])
def assign_a_row_by_list_index(lib):
    x = lib.tensor(X)
    x[[0]] = lib.tensor([9.0, 9.0, 9.0])
    return x


@idiom(expect=[[2.0, 0.5], [0.0, 3.0]])
def index_columns_by_list(lib):
    return lib.tensor(X)[:, [1, 0]]


@idiom(expect=[[0.5, -1.0]])
def slice_with_step(lib):
    return lib.tensor(X)[:1, ::2]


@idiom
def negative_step_slice_raises(lib):
    return lib.tensor([1.0, 2.0, 3.0])[::-1]


@idiom(expect=([3.0, 0.0, 1.5], 2.0))
def index_with_a_0d_tensor(lib):
    x = lib.tensor(X)
    return x[lib.tensor(1)], x[0, lib.tensor(1)].item()


@idiom(expect=[[0.5, 5.0, -1.0], [3.0, 0.0, 1.5]])
def chained_index_assignment_writes_through(lib):
    x = lib.tensor(X)
    x[0][1] = 5
    return x


@idiom(expect=[[1.5, 3.0, 0.0], [3.0, 0.0, 1.5]])
def augmented_assignment_on_a_row(lib):
    x = lib.tensor(X)
    x[0] += 1
    return x


@idiom(expect=[[0.5, 2.0, -1.0]])
def boolean_row_mask(lib):
    x = lib.tensor(X)
    return x[lib.tensor([True, False])]


@idiom
def index_with_a_float_tensor_raises(lib):
    return lib.tensor(X)[lib.tensor([0.0, 1.0])]


@idiom
def index_out_of_range_raises(lib):
    return lib.tensor(X)[5]


@idiom(expect=[[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
def gradient_through_fancy_index(lib):
    x = lib.tensor(X, requires_grad=True)
    x[[0, 1], [1, 0]].sum().backward()
    return x.grad * lib.tensor([[1.0, 2.0, 1.0], [3.0, 1.0, 1.0]])


# ==================================================================================== broadcasting
@idiom(expect=((3, 4), (2, 3)))
def broadcast_column_plus_row(lib):
    a = lib.ones(3, 1)
    b = lib.arange(4.0).view(1, 4)
    c = lib.ones(2, 3) * lib.tensor([1.0, 2.0, 3.0])
    return tuple((a + b).shape), tuple(c.shape)


@idiom
def broadcast_mismatch_raises(lib):
    return lib.ones(2, 3) + lib.ones(2)


@idiom(expect=([[-1.25, 1.0, -1.25], [1.25, -1.0, 1.25]], [[0.3333333, 1.3333333, -0.6666667],
                                                             [0.6666667, 0.0, 0.3333333]]))
def normalize_by_mean_and_row_sum(lib):
    x = lib.tensor(X)
    return x - x.mean(dim=0), x / x.sum(dim=1, keepdim=True)


# ======================================================================================== creation
@idiom(expect=([0, 1, 2, 3, 4], [0.0, 0.25, 0.5, 0.75], [0.0, 1.0, 2.0]))
def arange_int_and_float(lib):
    return lib.arange(5), lib.arange(0, 1, 0.25), lib.arange(3.)


@idiom(expect=([7, 7], [7.0, 7.0], [True, True]))
def full_takes_the_fill_values_dtype(lib):
    return lib.full((2,), 7), lib.full((2,), 7.), lib.full((2,), True)


@idiom(expect=([[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
def eye_and_strict_upper_triangle(lib):
    return lib.eye(2), lib.triu(lib.ones(3, 3), diagonal=1)


@idiom(expect=((0,), "float32", (), 3.5))
def empty_list_and_scalar_tensors(lib):
    e = lib.tensor([])
    s = lib.tensor(3.5)
    return tuple(e.shape), str(e.dtype).replace("torch.", ""), tuple(s.shape), s.item()


@idiom(expect=([1.0, 2.5], [True, False], [[0, 0, 0]]))
def constructor_dtypes_of_mixed_lists(lib):
    return lib.tensor([1, 2.5]), lib.tensor([True, False]), lib.zeros(1, 3, dtype=lib.long)


@idiom(expect=((2, 3), (2, 3), (3,), "int64", True))
def creation_with_tuple_list_and_randint(lib):
    a = lib.zeros((2, 3))
    b = lib.ones([2, 3])
    r = lib.randint(0, 10, (3,))
    return (tuple(a.shape), tuple(b.shape), tuple(r.shape), str(r.dtype).replace("torch.", ""),
            bool(((r >= 0) & (r < 10)).all()))


@idiom(expect=((5,), True))
def randint_with_only_high(lib):
    r = lib.randint(3, (5,))
    return tuple(r.shape), bool(((r >= 0) & (r < 3)).all())


@idiom(expect=True)
def manual_seed_makes_draws_repeat(lib):
    lib.manual_seed(42)
    a = lib.randn(3)
    lib.manual_seed(42)
    b = lib.randn(3)
    return lib.equal(a, b)


@idiom(expect=((1000,), True, True))
def randn_statistics(lib):
    x = lib.randn(1000)
    return tuple(x.shape), abs(x.mean().item()) < 0.15, abs(x.std().item() - 1) < 0.1


@idiom(expect=((2, 2), True, (3,), True))
def uniform_and_normal_in_place(lib):
    w = lib.empty(2, 2).uniform_(-1, 1)
    v = lib.zeros(3).normal_(5.0, 0.01)
    return (tuple(w.shape), bool(((w >= -1) & (w <= 1)).all()), tuple(v.shape),
            bool(((v - 5).abs() < 0.1).all()))


@idiom(expect=([[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0]], [1, 2], [3.0, 3.0]))
def new_tensor_factories(lib):
    x = lib.tensor([[1.0, 2.0]])
    return x.new_zeros(2, 2), x.new_ones(x.shape), x.new_tensor([1, 2]), x.new_full((2,), 3.0)


@idiom(expect=(True, False, True))
def is_tensor_and_isinstance(lib):
    t = lib.ones(2)
    return lib.is_tensor(t), lib.is_tensor([1.0]), isinstance(t, lib.Tensor)


# ========================================================================================== shapes
@idiom(expect=((6,), (2, 3), (3, 2), (3, 1, 2), (1, 2, 3), (2, 3)))
def view_reshape_permute_unsqueeze(lib):
    x = lib.arange(6.0).view(2, 3)
    return (tuple(x.view(-1).shape), tuple(x.reshape(2, -1).shape), tuple(x.transpose(0, 1).shape),
            tuple(x.t().unsqueeze(1).shape), tuple(x.unsqueeze(0).shape),
            tuple(x.unsqueeze(0).squeeze().shape))


@idiom
def view_of_a_transposed_tensor_raises(lib):
    return lib.arange(6.0).view(2, 3).t().view(-1)


@idiom(expect=[0.0, 3.0, 1.0, 4.0, 2.0, 5.0])
def contiguous_then_view(lib):
    return lib.arange(6.0).view(2, 3).t().contiguous().view(-1)


@idiom(expect=[0.0, 3.0, 1.0, 4.0, 2.0, 5.0])
def reshape_of_a_transposed_tensor(lib):
    return lib.arange(6.0).view(2, 3).t().reshape(-1)


@idiom(expect=(False, True))
def is_contiguous(lib):
    x = lib.ones(2, 3)
    return x.t().is_contiguous(), x.t().contiguous().is_contiguous()


@idiom(expect=((4, 3, 2), (2, 1, 3), (2, 3)))
def permute_and_squeeze_dim(lib):
    x = lib.zeros(2, 3, 4)
    y = lib.zeros(2, 1, 3)
    return tuple(x.permute(2, 1, 0).shape), tuple(y.squeeze(0).shape), tuple(y.squeeze(1).shape)


@idiom(expect=((2, 12), (24,), (3, 4, 2), (4, 2, 3)))
def flatten_and_expand_and_repeat(lib):
    x = lib.zeros(2, 3, 4)
    row = lib.zeros(1, 4, 2)
    return (tuple(x.flatten(1).shape), tuple(lib.flatten(x).shape),
            tuple(row.expand(3, -1, -1).shape), tuple(lib.zeros(2, 1, 1).repeat(2, 2, 3).shape))


@idiom(expect=((2, 2, 3), (2, 6), (2, 3, 2)))
def stack_and_cat(lib):
    a, b = lib.zeros(2, 3), lib.ones(2, 3)
    return (tuple(lib.stack([a, b]).shape), tuple(lib.cat((a, b), dim=-1).shape),
            tuple(lib.stack([a, b], dim=2).shape))


@idiom(expect=([(2, 1), (2, 2)], [(2, 2), (2, 1)], [(3, 2), (2, 2)]))
def split_and_chunk(lib):
    x = lib.zeros(2, 3)
    return ([tuple(t.shape) for t in x.split([1, 2], dim=1)],
            [tuple(t.shape) for t in x.chunk(2, dim=1)],
            [tuple(t.shape) for t in lib.zeros(5, 2).chunk(2)])


@idiom(expect=(2, 3, 4))
def unpack_size(lib):
    x = lib.zeros(2, 3, 4)
    B, T, C = x.size()
    return B, T, C


@idiom(expect=(True, True, 6, 2, 3))
def size_comparisons(lib):
    x = lib.zeros(2, 3)
    return (x.shape == (2, 3), x.size() == lib.Size([2, 3]), x.numel(), x.dim(), x.size(-1))


@idiom
def view_with_a_wrong_size_raises(lib):
    return lib.zeros(2, 3).view(4, -1)


@idiom
def cat_mismatched_shapes_raises(lib):
    return lib.cat([lib.zeros(2, 3), lib.zeros(2, 4)], dim=0)


@idiom(expect=((2, 3, 4), (4, 3, 2), (2, 4, 3)))
def swapaxes_movedim_unflatten(lib):
    x = lib.zeros(2, 12)
    y = lib.zeros(2, 3, 4)
    return (tuple(x.unflatten(1, (3, 4)).shape), tuple(y.permute(*reversed(range(3))).shape),
            tuple(y.movedim(2, 1).shape))


@idiom(expect=([[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]], [[2.0, 0.0, 1.0], [5.0, 3.0, 4.0]]))
def flip_and_roll(lib):
    x = lib.arange(6.0).view(2, 3)
    return lib.flip(x, dims=[1]), lib.roll(x, shifts=1, dims=1)


# ========================================================================================== dtypes
@idiom(expect=("float32", "int64", "int32", "bool", "float64", "float64"))
def conversions(lib):
    x = lib.tensor([1.7, -0.2, 0.0])
    return tuple(str(t.dtype).replace("torch.", "") for t in (
        x.long().float(), x.long(), x.int(), x.bool(), x.to(lib.float64), x.type(lib.float64)))


@idiom(expect=([1, 0, -1], [True, True, False]))
def float_to_long_truncates_and_to_bool(lib):
    x = lib.tensor([1.7, -0.2, -1.9])
    return x.long(), lib.tensor([1.7, -0.2, 0.0]).bool()


@idiom(expect=("float32", "float32", "float64", "int64", "int64", "float32"))
def promotion_rules(lib):
    i = lib.tensor([1, 2])
    f = lib.tensor([1.0, 2.0])
    d = lib.tensor([1.0, 2.0], dtype=lib.float64)
    i32 = lib.tensor([1, 2], dtype=lib.int32)
    return tuple(str(t.dtype).replace("torch.", "") for t in (
        i + f, i * 2.5, f + d, i32 + i, i + True, f + i32))


@idiom(expect=(3, "int64", 2, 0.5))
def sum_of_a_bool_mask(lib):
    pred = lib.tensor([1, 2, 3, 4])
    y = lib.tensor([1, 0, 3, 0])
    s = (pred == y).sum()
    return (lib.tensor([True, True, True]).sum().item(), str(s.dtype).replace("torch.", ""),
            s.item(), (pred == y).sum().item() / len(y))


@idiom(expect=(3, True, 2.5, [1, 2]))
def item_and_tolist_python_types(lib):
    return (lib.tensor(3).item(), lib.tensor(True).item(), lib.tensor([2.5]).item(),
            lib.tensor([1, 2]).tolist())


@idiom
def numpy_of_a_tensor_that_requires_grad_raises(lib):
    return lib.ones(2, requires_grad=True).numpy()


@idiom(expect=(True, [1.0, 1.0]))
def detach_then_numpy(lib):
    n = lib.ones(2, requires_grad=True).detach().numpy()
    return isinstance(n, np.ndarray), n.tolist()


@idiom(expect=(True, False, True))
def is_floating_point_and_dtype_compare(lib):
    return (lib.ones(1).is_floating_point(), lib.ones(1, dtype=lib.long).is_floating_point(),
            lib.ones(1).dtype == lib.float)


@idiom
def matmul_of_mixed_float_dtypes_raises(lib):
    return lib.ones(2, 3, dtype=lib.float64) @ lib.ones(3, 2)


@idiom
def linear_on_an_integer_input_raises(lib):
    return lib.nn.Linear(3, 2)(lib.ones(1, 3, dtype=lib.long))


@idiom
def linear_on_float64_numpy_data_raises(lib):
    x = lib.from_numpy(np.ones((2, 3)))
    return lib.nn.Linear(3, 2)(x)


# ====================================================================================== reductions
@idiom(expect=([3.5, 2.0, 0.5], [[1.5], [4.5]], 6.0, [0.5, 1.5]))
def sum_and_mean_with_dim_and_keepdim(lib):
    x = lib.tensor(X)
    return x.sum(dim=0), x.sum(1, keepdim=True), x.sum(), x.mean(dim=-1)


@idiom(expect=(6.0, [3.5, 2.0, 0.5]))
def sum_over_a_tuple_of_dims_and_axis(lib):
    x = lib.tensor(X)
    return x.sum(dim=(0, 1)).item(), x.sum(axis=0)


@idiom
def var_and_std_defaults(lib):
    x = lib.tensor(X)
    return x.var(), x.std(dim=0), x.var(dim=1, keepdim=True), lib.std(x, unbiased=False)


@idiom(expect=(-0.0, [1.5, 0.0, -1.5], [[0.5, 2.0, -1.0], [3.5, 2.0, 0.5]]))
def prod_and_cumsum(lib):
    x = lib.tensor(X)
    return x.prod().item(), x.prod(dim=0), x.cumsum(dim=0)


@idiom(expect=(3.0, -1.0, [1, 0], 3))
def max_min_argmax(lib):
    x = lib.tensor(X)
    return x.max().item(), x.min().item(), x.argmax(dim=1), x.argmax().item()


@idiom(expect=0.5)
def accuracy_from_logits(lib):
    logits = lib.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = lib.tensor([1, 1, 0, 0])
    return (logits.argmax(dim=1) == y).float().mean().item()


@idiom(expect=(2.0, [0.5, 0.0]))
def median_of_values(lib):
    x = lib.tensor([[0.5, 2.0, -1.0], [3.0, 0.0, 2.0]])
    return lib.tensor([1.0, 3.0, 2.0]).median().item(), x.median(dim=0).values[:2]


@idiom(expect=([0, 1, 2], [3, 2, 1], [0, 1, 2]))
def unique_with_counts(lib):
    labels = lib.tensor([0, 2, 1, 0, 1, 0])
    values, counts = lib.unique(labels, return_counts=True)
    return values, counts, lib.unique(labels)


@idiom(expect=(2, [[0, 1], [1, 0]], ([0, 1], [1, 0])))
def nonzero_count_and_where_of_one_argument(lib):
    x = lib.tensor([[0.0, 2.0], [3.0, 0.0]])
    return lib.count_nonzero(x).item(), lib.nonzero(x), lib.where(x != 0)


# =========================================================================== sort, gather, scatter
@idiom(expect=(([3.0, 2.0, 0.5], [1, 2, 0]), [[2, 0, 1], [1, 2, 0]]))
def sort_descending_and_argsort(lib):
    s = lib.sort(lib.tensor([0.5, 3.0, 2.0]), descending=True)
    return (s.values, s.indices), lib.tensor(X).argsort(dim=1)


@idiom(expect=([[2.0], [3.0]], [[0.5, 0.5], [0.0, 3.0]]))
def gather_picks_per_row(lib):
    x = lib.tensor(X)
    return x.gather(1, lib.tensor([[1], [0]])), lib.gather(x, 1, lib.tensor([[0, 0], [1, 0]]))


@idiom(expect=[[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
def one_hot_with_scatter_(lib):
    labels = lib.tensor([1, 3, 0])
    one_hot = lib.zeros(3, 4)
    one_hot.scatter_(1, labels.unsqueeze(1), 1.0)
    return one_hot


@idiom(expect=[3.0, 2.0, 0.0, 4.0])
def scatter_add_counts(lib):
    index = lib.tensor([0, 1, 0, 3, 0, 1, 3, 3, 3])
    out = lib.zeros(4)
    out.scatter_add_(0, index, lib.ones(9))
    return out


@idiom(expect=([[5.0, 0.0, 0.0], [0.0, 6.0, 0.0]], [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
def scatter_out_of_place_and_its_gradient(lib):
    src = lib.tensor([[5.0, 6.0]], requires_grad=True).view(2, 1)
    base = lib.zeros(2, 3, requires_grad=True)
    out = base.scatter(1, lib.tensor([[0], [1]]), src)
    (out * lib.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])).sum().backward()
    return out, base.grad * lib.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])


@idiom(expect=[[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]])
def f_one_hot(lib):
    return _F(lib).one_hot(lib.tensor([1, 3, 0]), num_classes=4)


@idiom(expect=[4.0, 3.0])
def topk_values_only(lib):
    values, indices = lib.tensor([1.0, 4.0, 3.0, 0.5]).topk(2)
    return values


# =============================================================================== elementwise maths
@idiom(expect=([0.0, 2.0, 0.0], [-1.0, 1.0, -1.0], [0.5, 1.0, -1.0]))
def clamp_spellings(lib):
    x = lib.tensor([-1.0, 2.0, -3.0])
    return x.clamp(min=0), lib.clamp(x, -1, 1), lib.tensor([0.5, 2.0, -1.0]).clamp(max=1.0)


@idiom(expect=([-1.0, 0.0, 1.0], [-2.0, 0.0, 1.0], [-1.0, 0.0, 2.0], [-2.0, 0.0, 2.0],
               [-1.0, 0.0, 1.0]))
def sign_floor_ceil_round_trunc(lib):
    x = lib.tensor([-1.5, 0.0, 1.5])
    return x.sign(), x.floor(), x.ceil(), x.round(), x.trunc()


@idiom(expect=([0.0, 1.0, 0.0], [1.0, 0.0, -1.0]))
def sin_and_cos(lib):
    x = lib.tensor([0.0, math.pi / 2, math.pi])
    return lib.sin(x).round(decimals=4).abs(), x.cos().round(decimals=4) + 0.0


@idiom(expect=([1.0, 2.0, 0.0], [1, 2, 0], [-1.0, 0.0, 1.0]))
def remainder_and_floor_division(lib):
    x = lib.tensor([7.0, -4.0, 3.0])
    return x % 3, lib.tensor([7, -4, 3]) % 3, lib.tensor([-3.0, 0.5, 3.5]) // 3


@idiom(expect=([1.0, 2.0, 3.0], [2.0, 4.0, 8.0], [1.0, 0.5, 0.25]))
def powers_and_reciprocals(lib):
    x = lib.tensor([1.0, 4.0, 9.0])
    y = lib.tensor([1.0, 2.0, 3.0])
    return x ** 0.5, 2 ** y, lib.tensor([1.0, 2.0, 4.0]).reciprocal()


@idiom(expect=([0.0, 1.0, 2.0], [1.0, 0.5, 1.0 / 3]))
def log_exp_rsqrt(lib):
    x = lib.tensor([1.0, math.e, math.e ** 2])
    return lib.log(x), lib.tensor([1.0, 4.0, 9.0]).rsqrt()


@idiom(expect=([0.0, 1.0], [math.log1p(1e-8)], [math.expm1(1e-8)]), rtol=1e-9)
def log1p_expm1_log2(lib):
    small = lib.tensor([1e-8], dtype=lib.float64)
    return lib.tensor([1.0, 2.0]).log2(), small.log1p(), lib.expm1(small)


@idiom(expect=([False, True, False], [False, False, True], [True, False, False], [1.0, 0.0, 3.0]))
def isnan_isinf_isfinite_nan_to_num(lib):
    x = lib.tensor([1.0, float("nan"), float("inf")])
    return lib.isnan(x), x.isinf(), lib.isfinite(x), lib.nan_to_num(x, nan=0.0, posinf=3.0)


@idiom(expect=([1.0, 1.5, 2.0], [0.5, 0.5, 0.5]))
def lerp_for_an_ema(lib):
    ema = lib.tensor([0.0, 1.0, 2.0])
    p = lib.tensor([2.0, 2.0, 2.0])
    ema.lerp_(p, 0.5)
    return ema, lib.lerp(lib.zeros(3), lib.ones(3), 0.5)


@idiom(expect=([True, False, False], [True, True, False], [False, True, True]))
def logical_functions(lib):
    a = lib.tensor([True, True, False])
    b = lib.tensor([True, False, False])
    return lib.logical_and(a, b), lib.logical_or(a, b), lib.logical_not(b)


@idiom(expect=([0.0, 2.0, 0.0], [0.0, 0.0, -3.0]))
def where_with_a_scalar(lib):
    x = lib.tensor([-1.0, 2.0, -3.0])
    return lib.where(x > 0, x, 0.0), lib.where(x < -2, x, lib.tensor(0.0))


@idiom(expect=([0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]))
def relu_in_place_spellings(lib):
    F = _F(lib)
    x = lib.tensor([-1.0, 0.0, 1.0])
    y = F.relu(x, inplace=True)                 # the result is x itself, changed
    z = lib.tensor([-1.0, 0.0, 1.0])
    lib.nn.ReLU(inplace=True)(z)
    return x, y, z


@idiom(expect=([0.0, 4.0], [1.0, 9.0]))
def in_place_unary_methods(lib):
    x = lib.tensor([0.0, 2.0])
    x.pow_(2)
    y = lib.tensor([1.0, 3.0])
    y.exp_().log_().mul_(y)
    return x, y


# ========================================================================================== matmul
@idiom(expect=(14.0, (2, 4), (5, 2, 4), (5, 2, 4)))
def matmul_shapes(lib):
    v = lib.tensor([1.0, 2.0, 3.0])
    A, B = lib.ones(2, 3), lib.ones(3, 4)
    bA, bB = lib.ones(5, 2, 3), lib.ones(5, 3, 4)
    return ((v @ v).item(), tuple(lib.mm(A, B).shape), tuple(lib.bmm(bA, bB).shape),
            tuple(lib.einsum('bij,bjk->bik', bA, bB).shape))


@idiom(expect=([[3.0, 3.0]], [6.0, 6.0]))
def mm_and_mv_methods(lib):
    A = lib.ones(1, 3)
    return A.mm(lib.ones(3, 2)), lib.ones(2, 3).mv(lib.tensor([1.0, 2.0, 3.0]))


@idiom
def matmul_shape_mismatch_raises(lib):
    return lib.ones(2, 3) @ lib.ones(2, 3)


@idiom
def bmm_needs_3d_tensors(lib):
    return lib.bmm(lib.ones(2, 3), lib.ones(3, 2))


@idiom(expect=[[2.0, 2.0], [2.0, 2.0]])
def einsum_with_operands_in_a_list(lib):
    return lib.einsum('ij,jk->ik', [lib.ones(2, 2), lib.ones(2, 2)])


@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)
