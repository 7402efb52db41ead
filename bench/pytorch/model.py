"""autotune-neural's `Gpt` in PyTorch, layer for layer (crates/autotune-neural/src/model.rs).

The Rust model is burn 0.22.1's pieces, configured as model.rs does:
- `tok`, `pos`: embeddings (vocab x d, max_len x d), summed;
- `enc`: burn's `TransformerEncoder` with `norm_first = true`, dropout 0: per layer
  `x = x + mha(norm_2(x)); x = x + pwff(norm_1(x))` (burn names the pre-attention norm
  `norm_2` and the pre-feed-forward norm `norm_1`; the names are kept so that the weights load
  by name);
- `mha`: separate query/key/value/output linears with biases, scores `q k^T / sqrt(d_k)`,
  masked with `mask_fill(-1e4)` (burn's `min_float`, not -inf), softmax over keys;
- `pwff`: linear (d -> d_ff, bias), exact (erf) GELU, linear (d_ff -> d, bias);
- layer norms with gamma and beta, epsilon 1e-5;
- `norm` (final layer norm) and `head` (linear d -> vocab with bias; not tied to `tok`).

Training (train.rs): mean cross-entropy over the tokens whose loss mask is set, AdamW from
burn's `AdamWConfig` (betas 0.9/0.999, epsilon 1e-5, decoupled weight decay 0.01 on every
tensor) with burn's per-tensor gradient clipping (each gradient tensor scaled to norm <= 1).
Generation (generate.rs): left-padded prompts, greedy, KV cache.
"""

import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

MIN_FLOAT = -1.0e4  # burn's MultiHeadAttentionConfig::min_float


class Mha(nn.Module):
    def __init__(self, d, heads, sdpa):
        super().__init__()
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.output = nn.Linear(d, d)
        self.heads, self.d_k, self.sdpa = heads, d // heads, sdpa

    def split(self, y):
        b, t, _ = y.shape
        return y.view(b, t, self.heads, self.d_k).transpose(1, 2)

    def attend(self, q, k, v, mask):
        """q [b,h,tq,dk], k/v [b,h,tk,dk], mask [b,1,tq,tk] bool, True = may not attend."""
        if self.sdpa:
            # The same function: an additive -1e4 where burn fills -1e4 (scores there are
            # replaced, not shifted, in burn; both underflow to 0 after the softmax).
            bias = torch.zeros(mask.shape, dtype=q.dtype).masked_fill_(mask, MIN_FLOAT)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_k)
            ctx = torch.softmax(scores.masked_fill(mask, MIN_FLOAT), dim=-1) @ v
        b, _, t, _ = ctx.shape
        return self.output(ctx.transpose(1, 2).reshape(b, t, self.heads * self.d_k))

    def forward(self, x, mask):
        return self.attend(
            self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x)), mask
        )


class Pwff(nn.Module):
    def __init__(self, d, d_ff):
        super().__init__()
        self.linear_inner = nn.Linear(d, d_ff)
        self.linear_outer = nn.Linear(d_ff, d)

    def forward(self, x):
        return self.linear_outer(F.gelu(self.linear_inner(x)))  # exact (erf) GELU


class Layer(nn.Module):
    def __init__(self, d, heads, d_ff, sdpa):
        super().__init__()
        self.mha = Mha(d, heads, sdpa)
        self.pwff = Pwff(d, d_ff)
        self.norm_1 = nn.LayerNorm(d, eps=1e-5)
        self.norm_2 = nn.LayerNorm(d, eps=1e-5)

    def forward(self, x, mask):
        x = x + self.mha(self.norm_2(x), mask)
        return x + self.pwff(self.norm_1(x))


class Encoder(nn.Module):
    def __init__(self, d, heads, d_ff, layers, sdpa):
        super().__init__()
        self.layers = nn.ModuleList(Layer(d, heads, d_ff, sdpa) for _ in range(layers))


class Gpt(nn.Module):
    def __init__(self, vocab, d_model, n_layers, n_heads, d_ff, max_len, sdpa=False):
        super().__init__()
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.enc = Encoder(d_model, n_heads, d_ff, n_layers, sdpa)
        self.norm = nn.LayerNorm(d_model, eps=1e-5)
        self.head = nn.Linear(d_model, vocab)
        self.vocab, self.max_len = vocab, max_len

    def forward(self, tokens, positions, mask):
        """Logits [b, t, vocab]; mask [b, 1, t, t] bool, True = may not attend."""
        h = self.tok(tokens) + self.pos(positions)
        for layer in self.enc.layers:
            h = layer(h, mask)
        return self.head(self.norm(h))

    # ---- generation with a KV cache ------------------------------------------------------

    @torch.inference_mode()
    def generate_greedy(self, prompts, new_tokens):
        """Greedy continuations (lists of token ids) of `prompts` (lists of token ids), like
        NeuralModel::generate with Sampling::Greedy and no end token: prompts left-padded
        (padding at position 0, masked out), one prefill pass over the prompt block, then one
        cached pass per new token. The cache is preallocated: [batch, heads, max_len, d_k]
        per layer for keys and for values."""
        n = len(prompts)
        width = max(len(p) for p in prompts)
        pad = torch.tensor([width - len(p) for p in prompts])
        cap = min(new_tokens, self.max_len - width)
        tokens = torch.zeros(n, width, dtype=torch.long)
        for i, p in enumerate(prompts):
            tokens[i, width - len(p):] = torch.tensor(p)
        total = width + cap
        cols = torch.arange(total)
        # positions[i, j] = max(j - pad_i, 0), clamped to the last position
        positions = (cols[None, :] - pad[:, None]).clamp(0, self.max_len - 1)
        padded = cols[None, :] < pad[:, None]  # [n, total]: key j is padding in row i
        causal = torch.ones(width, width, dtype=torch.bool).triu(1)
        mask = (causal[None, :, :] | padded[:, None, :width])[:, None]  # [n,1,w,w]
        layers = self.enc.layers
        h0 = layers[0].mha
        kc = [torch.empty(n, h0.heads, total, h0.d_k) for _ in layers]
        vc = [torch.empty(n, h0.heads, total, h0.d_k) for _ in layers]

        x = self.tok(tokens) + self.pos(positions[:, :width])
        for li, layer in enumerate(layers):
            a = layer.norm_2(x)
            q, k, v = (layer.mha.split(f(a)) for f in (layer.mha.query, layer.mha.key, layer.mha.value))
            kc[li][:, :, :width] = k
            vc[li][:, :, :width] = v
            x = x + layer.mha.attend(q, k, v, mask)
            x = x + layer.pwff(layer.norm_1(x))
        logits = self.head(self.norm(x[:, -1]))
        out = torch.empty(n, cap, dtype=torch.long)
        for s in range(cap):
            nxt = logits.argmax(-1)
            out[:, s] = nxt
            if s + 1 == cap:
                break
            t = width + s  # the column of the token just chosen
            x = self.tok(nxt[:, None]) + self.pos(positions[:, t:t + 1])
            step_mask = padded[:, None, None, :t + 1]  # [n,1,1,t+1]
            for li, layer in enumerate(layers):
                a = layer.norm_2(x)
                q, k, v = (layer.mha.split(f(a)) for f in (layer.mha.query, layer.mha.key, layer.mha.value))
                kc[li][:, :, t:t + 1] = k
                vc[li][:, :, t:t + 1] = v
                x = x + layer.mha.attend(q, kc[li][:, :, :t + 1], vc[li][:, :, :t + 1], step_mask)
                x = x + layer.pwff(layer.norm_1(x))
            logits = self.head(self.norm(x[:, -1]))
        return out.tolist()


# ---- training ----------------------------------------------------------------------------


def batch_tensors(examples, pad_token=0):
    """(inputs, targets, positions, weights, mask, count) as train.rs's batch_tensors: inputs
    are tokens[:-1], targets tokens[1:], the loss weight of target j is loss_mask[j + 1]."""
    n = len(examples)
    t = max(len(toks) for toks, _ in examples) - 1
    inputs = torch.full((n, t), pad_token, dtype=torch.long)
    targets = torch.full((n, t), pad_token, dtype=torch.long)
    weights = torch.zeros(n, t)
    for i, (toks, lm) in enumerate(examples):
        k = len(toks) - 1
        inputs[i, :k] = torch.tensor(toks[:-1])
        targets[i, :k] = torch.tensor(toks[1:])
        weights[i, :k] = torch.tensor(lm[1:], dtype=torch.float32)
    positions = torch.arange(t).expand(n, t)
    mask = torch.ones(t, t, dtype=torch.bool).triu(1).expand(n, 1, t, t)
    return inputs, targets, positions, weights, mask, int(weights.sum().item())


def masked_loss(model, inputs, targets, positions, weights, mask, count):
    logits = model(inputs, positions, mask)
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return (nll * weights.flatten()).sum() / count


class BurnAdamW:
    """burn's AdamW with per-tensor norm clipping (`GradientClippingConfig::Norm`), from
    torch.optim.AdamW plus foreach norm/scale ops for the clipping."""

    def __init__(self, params, lr=1e-3, weight_decay=0.01, clip=1.0, impl="default"):
        self.params = [p for p in params if p.requires_grad]
        kw = dict(lr=lr, betas=(0.9, 0.999), eps=1e-5, weight_decay=weight_decay)
        if impl == "foreach":
            kw["foreach"] = True
        elif impl == "fused":
            kw["fused"] = True
        elif impl != "default":
            raise ValueError(f"unknown optimizer implementation {impl}")
        self.opt = torch.optim.AdamW(self.params, **kw)
        self.clip = clip
        self.tiny = torch.finfo(torch.float32).tiny  # burn adds f32's min_positive

    def zero_grad(self):
        self.opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def step(self):
        if self.clip is not None:
            grads = [p.grad for p in self.params]
            norms = torch._foreach_norm(grads)
            coefs = [(self.clip / (nrm + self.tiny)).clamp_(max=1.0) for nrm in norms]
            torch._foreach_mul_(grads, coefs)
        self.opt.step()


# ---- weights from the Rust checkpoint ----------------------------------------------------


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    base = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        lo, hi = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + lo:base + hi]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def load_burn_weights(model, path):
    """Copies a checkpoint written by NeuralModel::save (burn names) into `model`. burn's
    Linear weight is [d_in, d_out] (PyTorch's is [d_out, d_in]); LayerNorm's gamma/beta are
    PyTorch's weight/bias."""
    tensors = read_safetensors(path)
    state = model.state_dict()
    loaded = {}
    for name, t in tensors.items():
        if name.endswith(".gamma"):
            name = name[: -len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[: -len("beta")] + "bias"
        if name not in state:
            raise KeyError(f"{name}: not a parameter of the PyTorch model")
        if t.dim() == 2 and not (name.startswith("tok.") or name.startswith("pos.")):
            t = t.t()
        if tuple(t.shape) != tuple(state[name].shape):
            raise ValueError(f"{name}: shape {tuple(t.shape)} vs {tuple(state[name].shape)}")
        loaded[name] = t.contiguous()
    missing = set(state) - set(loaded)
    if missing:
        raise KeyError(f"not in the checkpoint: {sorted(missing)}")
    model.load_state_dict(loaded)
