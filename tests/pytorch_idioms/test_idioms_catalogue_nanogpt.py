"""The PyTorch-idiom catalogue (see test_idioms_catalogue.py), continued: nanoGPT's model.py
and train.py as written there -- the causal mask buffer, weight tying, init with apply,
named_parameters filtering by dim, optimizer groups, sampling with topk and multinomial,
get_batch, estimate_loss, param_group lr updates, clip_grad_norm_, checkpoints."""
import math

import numpy as np
import pytest

from idioms import cases_of, check_case, idiom


def _nn(lib):
    return lib.nn


def _F(lib):
    return lib.nn.functional


# =============================================================================== nanoGPT: model.py
@idiom(expect=([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
def nanogpt_causal_softmax_with_a_tril_buffer(lib):
    nn, F = _nn(lib), _F(lib)

    class Attn(nn.Module):
        def __init__(self, block_size):
            super().__init__()
            self.register_buffer("bias", lib.tril(lib.ones(block_size, block_size))
                                 .view(1, 1, block_size, block_size))

        def forward(self, att):
            T = att.size(-1)
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
            return F.softmax(att, dim=-1)

    att = Attn(8)(lib.zeros(1, 1, 3, 3))
    return att[0, 0]


@idiom
def nanogpt_attention_shapes_and_values(lib):
    B, T, C, n_head = 2, 4, 6, 2
    x = lib.arange(B * T * 3 * C, dtype=lib.float32).reshape(B, T, 3 * C) / 100
    q, k, v = x.split(C, dim=2)
    k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
    q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
    v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    bias = lib.tril(lib.ones(T, T)).view(1, 1, T, T)
    att = att.masked_fill(bias[:, :, :T, :T] == 0, float('-inf'))
    att = _F(lib).softmax(att, dim=-1)
    y = att @ v
    y = y.transpose(1, 2).contiguous().view(B, T, C)
    return y


@idiom(expect=([0, 1, 2, 3, 4], "int64"))
def nanogpt_position_indices(lib):
    t = 5
    device = "cpu"
    pos = lib.arange(0, t, dtype=lib.long, device=device)
    return pos, str(pos.dtype).replace("torch.", "")


def _tiny_gpt(lib, vocab=11, n_embd=8, block_size=6, n_layer=2):
    nn = _nn(lib)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.c_fc = nn.Linear(n_embd, 4 * n_embd)
            self.c_proj = nn.Linear(4 * n_embd, n_embd)
            self.gelu = nn.GELU()

        def forward(self, x):
            return x + self.c_proj(self.gelu(self.c_fc(self.ln_1(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(vocab, n_embd),
                wpe=nn.Embedding(block_size, n_embd),
                drop=nn.Dropout(0.0),
                h=nn.ModuleList([Block() for _ in range(n_layer)]),
                ln_f=nn.LayerNorm(n_embd),
            ))
            self.lm_head = nn.Linear(n_embd, vocab, bias=False)
            self.transformer.wte.weight = self.lm_head.weight    # weight tying
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith('c_proj.weight'):
                    lib.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                lib.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    lib.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                lib.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def get_num_params(self, non_embedding=True):
            n_params = sum(p.numel() for p in self.parameters())
            if non_embedding:
                n_params -= self.transformer.wpe.weight.numel()
            return n_params

        def forward(self, idx, targets=None):
            device = idx.device
            b, t = idx.size()
            assert t <= block_size, f"Cannot forward sequence of length {t}"
            pos = lib.arange(0, t, dtype=lib.long, device=device)
            tok_emb = self.transformer.wte(idx)
            pos_emb = self.transformer.wpe(pos)
            x = self.transformer.drop(tok_emb + pos_emb)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            if targets is not None:
                logits = self.lm_head(x)
                loss = lib.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                                       targets.view(-1), ignore_index=-1)
            else:
                logits = self.lm_head(x[:, [-1], :])
                loss = None
            return logits, loss

    return GPT()


@idiom(expect=(True, 8 * 11 + 2 * (4 * 8 * 8 * 2 + 4 * 8 + 8 + 2 * 8) + 2 * 8, True))
def nanogpt_weight_tying_counts_once(lib):
    model = _tiny_gpt(lib)
    tied = model.transformer.wte.weight is model.lm_head.weight
    n = model.get_num_params()
    names = [n for n, _ in model.named_parameters()]
    return tied, n, "lm_head.weight" not in names and "transformer.wte.weight" in names


@idiom(expect=((2, 1, 11), (2, 6, 11), True, True))
def nanogpt_forward_with_and_without_targets(lib):
    model = _tiny_gpt(lib)
    idx = lib.randint(0, 11, (2, 6))
    logits, loss = model(idx)
    targets = idx.clone()
    targets[:, -1] = -1                          # ignore_index=-1 on the last position
    logits_t, loss_t = model(idx, targets)
    return (tuple(logits.shape), tuple(logits_t.shape), loss is None,
            abs(loss_t.item() - math.log(11)) < 0.3)


@idiom(expect=(0.0, True, True))
def nanogpt_init_statistics(lib):
    model = _tiny_gpt(lib, n_embd=32, n_layer=2)
    biases = [p for n, p in model.named_parameters() if n.endswith("c_fc.bias")]
    w = model.transformer.h[0].c_fc.weight
    proj = model.transformer.h[0].c_proj.weight
    return (max(b.abs().max().item() for b in biases), abs(w.std().item() - 0.02) < 0.004,
            abs(proj.std().item() - 0.01) < 0.002)


@idiom(expect=(2, 10, 16, True))
def nanogpt_configure_optimizers(lib):
    model = _tiny_gpt(lib)
    weight_decay, learning_rate, betas = 0.1, 6e-4, (0.9, 0.95)
    param_dict = {pn: p for pn, p in model.named_parameters()}
    param_dict = {pn: p for pn, p in param_dict.items() if p.requires_grad}
    decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
    nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
    optim_groups = [
        {'params': decay_params, 'weight_decay': weight_decay},
        {'params': nodecay_params, 'weight_decay': 0.0},
    ]
    optimizer = lib.optim.AdamW(optim_groups, lr=learning_rate, betas=betas)
    return (len(optimizer.param_groups), len(optimizer.param_groups[1]['params']),
            len(param_dict), optimizer.param_groups[0]['betas'] == betas)


@idiom(expect=((1, 7), "int64", True))
def nanogpt_generate_greedy_with_top_k_1(lib):
    model = _tiny_gpt(lib)
    model.eval()
    F = _F(lib)

    @lib.no_grad()
    def generate(idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= 6 else idx[:, -6:]
            logits, _ = model(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = lib.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float('Inf')
            probs = F.softmax(logits, dim=-1)
            idx_next = lib.multinomial(probs, num_samples=1)
            idx = lib.cat((idx, idx_next), dim=1)
        return idx

    idx = generate(lib.zeros((1, 1), dtype=lib.long), 6, top_k=1)
    greedy = lib.zeros((1, 1), dtype=lib.long)
    with lib.no_grad():
        for _ in range(6):
            logits, _ = model(greedy[:, -6:])
            greedy = lib.cat((greedy, logits[:, -1, :].argmax(-1, keepdim=True)), dim=1)
    return tuple(idx.shape), str(idx.dtype).replace("torch.", ""), bool((idx == greedy).all())


@idiom(expect=[[4.0, 3.0, -math.inf, -math.inf], [-math.inf, 5.0, 2.0, -math.inf]])
def nanogpt_top_k_filter(lib):
    logits = lib.tensor([[4.0, 3.0, 1.0, 0.5], [0.1, 5.0, 2.0, -1.0]])
    v, _ = lib.topk(logits, 2)
    logits[logits < v[:, [-1]]] = -float('Inf')
    return logits


@idiom(expect=((6, 6), (1, 1, 4, 4), (4, 8)))
def nanogpt_crop_block_size(lib):
    nn = _nn(lib)
    wpe = nn.Embedding(6, 8)
    bias = lib.tril(lib.ones(6, 6)).view(1, 1, 6, 6)
    holder = nn.Module()
    holder.wpe = wpe
    holder.register_buffer("bias", bias)
    block_size = 4
    holder.wpe.weight = nn.Parameter(holder.wpe.weight[:block_size])
    before = tuple(holder.bias.shape[2:])
    holder.bias = holder.bias[:, :, :block_size, :block_size]
    return before, tuple(holder.bias.shape), tuple(holder.wpe.weight.shape)


@idiom(expect=(True, ["bias"]))
def nanogpt_buffer_in_state_dict_and_to(lib):
    nn = _nn(lib)
    m = nn.Module()
    m.register_buffer("bias", lib.tril(lib.ones(3, 3)))
    m.register_buffer("scratch", lib.zeros(2), persistent=False)
    m.to(lib.float64)
    return m.bias.dtype == lib.float64, list(m.state_dict().keys())


@idiom(expect=True)
def nanogpt_from_pretrained_copy_transposed(lib):
    nn = _nn(lib)
    model = nn.Linear(3, 2, bias=False)
    sd = model.state_dict()
    sd_hf = {"weight": lib.arange(6.0).view(3, 2)}       # a Conv1D layout: transposed
    k = "weight"
    assert sd_hf[k].shape[::-1] == sd[k].shape
    with lib.no_grad():
        sd[k].copy_(sd_hf[k].t())
    return bool((model.weight == lib.arange(6.0).view(3, 2).t()).all())


# =============================================================================== nanoGPT: train.py
@idiom(expect=((4, 8), (4, 8), "int64", True))
def nanogpt_get_batch(lib):
    data = np.arange(100, dtype=np.uint16)
    block_size, batch_size = 8, 4
    ix = lib.randint(len(data) - block_size, (batch_size,))
    x = lib.stack([lib.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
    y = lib.stack([lib.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])
    return (tuple(x.shape), tuple(y.shape), str(x.dtype).replace("torch.", ""),
            bool((y - x == 1).all()))


@idiom(expect=(2.0, 3.0, True))
def nanogpt_estimate_loss(lib):
    out = {}
    for split, base in (("train", 1.0), ("val", 2.0)):
        losses = lib.zeros(3)
        for k in range(3):
            loss = lib.tensor(base + k)
            losses[k] = loss.item()
        out[split] = losses.mean()
    best_val_loss = 1e9
    improved = out['val'] < best_val_loss
    return out['train'].item(), out['val'].item(), bool(improved)


@idiom(expect=[0.0005, 0.0005, 0.0005], rtol=1e-3)
def nanogpt_set_lr_in_param_groups(lib):
    w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    optimizer = lib.optim.SGD([w], lr=1.0)
    lr = 5e-4
    for param_group in optimizer.param_groups:
        param_group['lr'] = lr
    w.sum().backward()
    optimizer.step()
    return lib.tensor([1.0, 2.0, 3.0]) - w.detach()


@idiom(expect=(True, [None, None]))
def nanogpt_zero_grad_set_to_none(lib):
    nn = _nn(lib)
    model = nn.Linear(2, 2)
    optimizer = lib.optim.AdamW(model.parameters(), lr=1e-3)
    model(lib.ones(1, 2)).sum().backward()
    had = all(p.grad is not None for p in model.parameters())
    optimizer.zero_grad(set_to_none=True)
    return had, [p.grad for p in model.parameters()]


@idiom(expect=(5.0, 1.0))
def nanogpt_clip_grad_norm(lib):
    w = lib.tensor([0.0, 0.0], requires_grad=True)
    (w * lib.tensor([3.0, 4.0])).sum().backward()
    total = lib.nn.utils.clip_grad_norm_([w], 1.0)
    return total.item(), round(w.grad.norm().item(), 4)


@idiom(expect=(True, False, True))
def nanogpt_train_eval_modes(lib):
    model = _tiny_gpt(lib)
    model.train()
    a = model.training and model.transformer.h[0].training
    model.eval()
    b = model.transformer.drop.training
    model.train()
    return a, b, all(m.training for m in model.modules())


@idiom(expect=(1.5, 0.25, True))
def nanogpt_gradient_accumulation(lib):
    gradient_accumulation_steps = 4
    w = lib.tensor(1.0, requires_grad=True)
    for micro_step in range(gradient_accumulation_steps):
        loss = w * 1.5
        loss = loss / gradient_accumulation_steps
        loss.backward()
    lossf = loss.item() * gradient_accumulation_steps
    return lossf, w.grad.item() / 6, isinstance(lossf, float)


@idiom(expect=(["w", "b"], 7, 0.5, True))
def nanogpt_checkpoint_round_trip(lib):
    import tempfile
    import os
    nn = _nn(lib)
    model = nn.Module()
    model.w = nn.Parameter(lib.tensor([[1.0, 2.0]]))
    model.b = nn.Parameter(lib.tensor([0.5]))
    optimizer = lib.optim.AdamW(model.parameters(), lr=0.1)
    (model.w.sum() + model.b.sum()).backward()
    optimizer.step()
    checkpoint = {
        'model': model.state_dict(),
        'optimizer': optimizer.state_dict(),
        'model_args': dict(n_layer=2, bias=False),
        'iter_num': 7,
        'best_val_loss': lib.tensor(0.5),
        'config': {'learning_rate': 0.1},
    }
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'ckpt.pt')
        lib.save(checkpoint, path)
        checkpoint = lib.load(path)
    state_dict = checkpoint['model']
    unwanted_prefix = '_orig_mod.'
    for k, v in list(state_dict.items()):
        if k.startswith(unwanted_prefix):
            state_dict[k[len(unwanted_prefix):]] = state_dict.pop(k)
    fresh = nn.Module()
    fresh.w = nn.Parameter(lib.zeros(1, 2))
    fresh.b = nn.Parameter(lib.zeros(1))
    fresh.load_state_dict(state_dict)
    opt2 = lib.optim.AdamW(fresh.parameters(), lr=0.1)
    opt2.load_state_dict(checkpoint['optimizer'])
    return (list(state_dict), checkpoint['iter_num'], float(checkpoint['best_val_loss']),
            bool((fresh.w == model.w).all()))


@idiom(expect=[0.0, 0.5, 1.0, 0.9141, 0.6891, 0.4109, 0.1859, 0.1])
def nanogpt_get_lr_schedule(lib):
    learning_rate, warmup_iters, lr_decay_iters, min_lr = 1.0, 2, 7, 0.1

    def get_lr(it):
        if it < warmup_iters:
            return learning_rate * it / warmup_iters
        if it > lr_decay_iters:
            return min_lr
        decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return min_lr + coeff * (learning_rate - min_lr)

    w = lib.zeros(1, requires_grad=True)
    optimizer = lib.optim.SGD([w], lr=learning_rate)
    seen = []
    for it in range(8):
        lr = get_lr(it)
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr
        seen.append(round(optimizer.param_groups[0]['lr'], 4))
    return seen


@idiom(expect=[0.1, 0.1, 0.01, 0.01, 0.001])
def lr_scheduler_step_lr_get_last_lr(lib):
    w = lib.zeros(1, requires_grad=True)
    opt = lib.optim.SGD([w], lr=0.1)
    sched = lib.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    lrs = []
    for epoch in range(5):
        lrs.append(round(sched.get_last_lr()[0], 6))
        opt.step()
        sched.step()
    return lrs


# =============================================================================== nanoGPT, verbatim
def _nanogpt(lib):
    """nanoGPT's model.py, as written there (torch -> lib; from_pretrained left out)."""
    import inspect
    from dataclasses import dataclass
    nn, F = lib.nn, lib.nn.functional

    class LayerNorm(nn.Module):
        """ LayerNorm but with an optional bias. PyTorch doesn't support simply bias=False """

        def __init__(self, ndim, bias):
            super().__init__()
            self.weight = nn.Parameter(lib.ones(ndim))
            self.bias = nn.Parameter(lib.zeros(ndim)) if bias else None

        def forward(self, input):
            return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)

    class CausalSelfAttention(nn.Module):

        def __init__(self, config):
            super().__init__()
            assert config.n_embd % config.n_head == 0
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.attn_dropout = nn.Dropout(config.dropout)
            self.resid_dropout = nn.Dropout(config.dropout)
            self.n_head = config.n_head
            self.n_embd = config.n_embd
            self.dropout = config.dropout
            self.flash = hasattr(lib.nn.functional, 'scaled_dot_product_attention') and \
                config.flash
            if not self.flash:
                self.register_buffer("bias", lib.tril(lib.ones(config.block_size,
                                                               config.block_size))
                                     .view(1, 1, config.block_size, config.block_size))

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            if self.flash:
                y = lib.nn.functional.scaled_dot_product_attention(
                    q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0,
                    is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
                att = F.softmax(att, dim=-1)
                att = self.attn_dropout(att)
                y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            y = self.resid_dropout(self.c_proj(y))
            return y

    class MLP(nn.Module):

        def __init__(self, config):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
            self.dropout = nn.Dropout(config.dropout)

        def forward(self, x):
            return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

    class Block(nn.Module):

        def __init__(self, config):
            super().__init__()
            self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
            self.attn = CausalSelfAttention(config)
            self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
            self.mlp = MLP(config)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlp(self.ln_2(x))
            return x

    @dataclass
    class GPTConfig:
        block_size: int = 8
        vocab_size: int = 13
        n_layer: int = 2
        n_head: int = 2
        n_embd: int = 8
        dropout: float = 0.0
        bias: bool = True
        flash: bool = True

    class GPT(nn.Module):

        def __init__(self, config):
            super().__init__()
            assert config.vocab_size is not None
            assert config.block_size is not None
            self.config = config
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            ))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith('c_proj.weight'):
                    lib.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

        def get_num_params(self, non_embedding=True):
            n_params = sum(p.numel() for p in self.parameters())
            if non_embedding:
                n_params -= self.transformer.wpe.weight.numel()
            return n_params

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                lib.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    lib.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                lib.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx, targets=None):
            device = idx.device
            b, t = idx.size()
            assert t <= self.config.block_size
            pos = lib.arange(0, t, dtype=lib.long, device=device)
            tok_emb = self.transformer.wte(idx)
            pos_emb = self.transformer.wpe(pos)
            x = self.transformer.drop(tok_emb + pos_emb)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            if targets is not None:
                logits = self.lm_head(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                       ignore_index=-1)
            else:
                logits = self.lm_head(x[:, [-1], :])
                loss = None
            return logits, loss

        def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
            param_dict = {pn: p for pn, p in self.named_parameters()}
            param_dict = {pn: p for pn, p in param_dict.items() if p.requires_grad}
            decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
            nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
            optim_groups = [
                {'params': decay_params, 'weight_decay': weight_decay},
                {'params': nodecay_params, 'weight_decay': 0.0}
            ]
            fused_available = 'fused' in inspect.signature(lib.optim.AdamW).parameters
            use_fused = fused_available and device_type == 'cuda'
            extra_args = dict(fused=True) if use_fused else dict()
            return lib.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)

        def estimate_mfu(self, fwdbwd_per_iter, dt):
            N = self.get_num_params()
            cfg = self.config
            L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
            flops_per_token = 6 * N + 12 * L * H * Q * T
            flops_per_fwdbwd = flops_per_token * T
            flops_per_iter = flops_per_fwdbwd * fwdbwd_per_iter
            return (flops_per_iter * (1.0 / dt)) / 312e12

        @lib.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= self.config.block_size \
                    else idx[:, -self.config.block_size:]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = lib.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float('Inf')
                probs = F.softmax(logits, dim=-1)
                idx_next = lib.multinomial(probs, num_samples=1)
                idx = lib.cat((idx, idx_next), dim=1)
            return idx

    return GPT, GPTConfig


def _same_weights(lib, model):
    """Every parameter set to the same values in both libraries (the init draws differ)."""
    with lib.no_grad():
        for k, (_, p) in enumerate(model.named_parameters()):
            n = p.numel()
            p.copy_((lib.sin(lib.arange(n, dtype=lib.float32) * 0.77 + k) * 0.2).view(p.shape))


def _nanogpt_train(lib, flash):
    """train.py's loop as written there (CPU, float32: nullcontext and a disabled scaler)."""
    from contextlib import nullcontext
    GPT, GPTConfig = _nanogpt(lib)
    lib.manual_seed(1337)
    lib.backends.cuda.matmul.allow_tf32 = True
    lib.backends.cudnn.allow_tf32 = True
    device, dtype = 'cpu', 'float32'
    device_type = 'cuda' if 'cuda' in device else 'cpu'
    ptdtype = {'float32': lib.float32, 'bfloat16': lib.bfloat16, 'float16': lib.float16}[dtype]
    ctx = nullcontext() if device_type == 'cpu' else lib.amp.autocast(device_type=device_type,
                                                                        dtype=ptdtype)
    model = GPT(GPTConfig(flash=flash))
    _same_weights(lib, model)
    model.to(device)
    scaler = lib.cuda.amp.GradScaler(enabled=(dtype == 'float16'))
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), device_type)
    compile = False            # (torch.compile on a CPU needs a C compiler; mg.compile is a no-op)
    if compile:
        model = lib.compile(model)
    data = np.arange(200, dtype=np.uint16) % 13

    def get_batch(start):
        ix = lib.tensor([start, start + 3, start + 7])
        x = lib.stack([lib.from_numpy((data[i:i + 8]).astype(np.int64)) for i in ix])
        y = lib.stack([lib.from_numpy((data[i + 1:i + 1 + 8]).astype(np.int64)) for i in ix])
        return x.to(device), y.to(device)

    gradient_accumulation_steps, grad_clip = 2, 1.0
    X, Y = get_batch(0)
    losses, lrs = [], []
    for iter_num in range(4):
        lr = 1e-2 * (iter_num + 1) / 4
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr
        model.train()
        for micro_step in range(gradient_accumulation_steps):
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps
            X, Y = get_batch(iter_num * 2 + micro_step + 1)
            scaler.scale(loss).backward()
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            lib.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item() * gradient_accumulation_steps)
        lrs.append(optimizer.param_groups[0]['lr'])
    mfu = model.estimate_mfu(3 * gradient_accumulation_steps, 0.5)
    return losses, lrs, model.get_num_params(), mfu > 0, model


@idiom(rtol=2e-4)
def nanogpt_verbatim_training_steps_flash(lib):
    losses, lrs, n, mfu, model = _nanogpt_train(lib, flash=True)
    return losses, lrs, n, mfu, model.lm_head.weight.detach()[:2]


@idiom(rtol=2e-4)
def nanogpt_verbatim_training_steps_manual_attention(lib):
    losses, lrs, n, mfu, model = _nanogpt_train(lib, flash=False)
    model.eval()
    idx = model.generate(lib.zeros((1, 1), dtype=lib.long), 10, top_k=1)
    return losses, tuple(idx.shape), idx


@pytest.mark.parametrize("name", cases_of(__name__))
def test_idiom(name):
    check_case(name)
