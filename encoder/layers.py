"""Building blocks of the Toto transformer: LLaMA's pre-norm block, RoPE, the KV cache and a fused
head + cross-entropy.

The math is HF Llama's exactly (RoPE in the rotate-half convention, RMSNorm statistics in fp32),
so `encoder.hf` converts by renaming. Projections are separate matrices, not fused q/k/v or
gate/up: on a CPU the fused outputs (9-25 MB a layer at base) are above glibc's mmap threshold,
so every step page-faults them in afresh, and fused was measured 0-25% slower, never faster.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / rms(x) * weight, with the statistics in fp32 as in HF `LlamaRMSNorm`."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def rope_tables(head_dim: int, base: float, length: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (length, head_dim) of RoPE angles pos * base^(-2i/head_dim), each angle twice.

    Computed in fp32 exactly as HF computes them, so logits agree to float rounding.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float, device=device) / head_dim))
    angles = torch.arange(length, dtype=torch.float, device=device)[:, None] * inv_freq
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin over the last dim (cos/sin broadcastable to x).

    Non-interleaved ("rotate half") pairing: dimension i rotates with i + head_dim/2, as in HF.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.addcmul(x * cos.to(x.dtype), torch.cat((-x2, x1), dim=-1), sin.to(x.dtype))


class KVCache:
    """Keys and values of the tokens already seen, one (B, heads, L, head_dim) pair per block.

    `Toto.forward(x, cache=c)` appends the new tokens' keys/values to every block it runs and
    places the new tokens at positions `c.position ...`. Keys are stored already rotated by RoPE,
    so dropping old tokens must keep the positions counting: `keep_last` does that (a sliding
    window), `crop` rolls back to a prefix. Every call on one cache must run the same number of
    blocks. Growth is by concatenation: simple, and cheap next to the attention it serves.
    """

    def __init__(self):
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.offset = 0  # absolute position of the first cached token

    @property
    def length(self) -> int:
        """Tokens held."""
        return self.keys[0].shape[2] if self.keys else 0

    @property
    def position(self) -> int:
        """Absolute position of the next token (= length unless `keep_last` dropped some)."""
        return self.offset + self.length

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append block `layer`'s new keys/values; return all of them (past + new)."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        else:
            self.keys[layer] = torch.cat((self.keys[layer], k), dim=2)
            self.values[layer] = torch.cat((self.values[layer], v), dim=2)
        return self.keys[layer], self.values[layer]

    def crop(self, n: int) -> None:
        """Keep the first `n` tokens (roll back what followed)."""
        self.keys = [k[:, :, :n] for k in self.keys]
        self.values = [v[:, :, :n] for v in self.values]

    def keep_last(self, n: int) -> None:
        """Keep the last `n` tokens (sliding window); later tokens keep their true positions."""
        drop = max(self.length - n, 0)
        self.keys = [k[:, :, drop:] for k in self.keys]
        self.values = [v[:, :, drop:] for v in self.values]
        self.offset += drop


class Attention(nn.Module):
    """Multi-head causal self-attention with RoPE through `scaled_dot_product_attention`."""

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x, cos, sin, mask, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, D = x.shape
        heads = (B, T, self.n_heads, self.head_dim)
        cos, sin = cos.view(T, 1, -1), sin.view(T, 1, -1)  # broadcast over heads
        q = apply_rope(self.wq(x).view(heads), cos, sin).transpose(1, 2)
        k = apply_rope(self.wk(x).view(heads), cos, sin).transpose(1, 2)
        v = self.wv(x).view(heads).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        if isinstance(mask, torch.Tensor):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=mask)
        return self.wo(out.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(x w1) * x w3); w1 is the gate, w3 the up projection."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + ffn(norm(x))."""

    def __init__(self, dim: int, n_heads: int, hidden: int, eps: float):
        super().__init__()
        self.attention_norm = RMSNorm(dim, eps)
        self.attention = Attention(dim, n_heads)
        self.ffn_norm = RMSNorm(dim, eps)
        self.feed_forward = FeedForward(dim, hidden)

    def forward(self, x, cos, sin, mask, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, mask, cache, layer)
        return x + self.feed_forward(self.ffn_norm(x))


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int,
                         chunk: int = 256) -> torch.Tensor:
    """Mean cross-entropy of logits h @ weight.T (h: (N, dim), targets: (N,)), never materialized whole.

    Why: with an 8k vocabulary the logits of a 4k-token sequence are 134 MB in fp32, and the plain
    path (matmul, log_softmax, nll, then their backward passes and a zero-filled gradient) streams
    them through memory about eight times. Here each chunk of rows makes its logits, loss and
    softmax gradient while they are still in cache: measured 1.5x (fp32) to 2.5x (bf16) faster on
    this CPU, with the same result.
    Matmuls run in the autocast dtype if autocast is on; the softmax and the loss in fp32.
    """
    device = h.device.type
    if not torch.amp.is_autocast_available(device):  # the meta device (pretrain/dry_run.py measures on it)
        return _LinearCrossEntropy.apply(h, weight, targets, ignore_index, h.dtype, chunk)
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
    with torch.autocast(device, enabled=False):
        return _LinearCrossEntropy.apply(h, weight, targets, ignore_index, dtype, chunk)


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the gradients too (softmax - onehot per chunk); backward only scales them."""

    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index, dtype, chunk):
        hx, wx = h.to(dtype), weight.to(dtype)
        grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if grads else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if grads else None
        valid = targets != ignore_index
        safe = torch.where(valid, targets, 0)[:, None]
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for s in range(0, h.shape[0], chunk):
            rows = slice(s, s + chunk)
            logits = (hx[rows] @ wx.t()).float()
            picked = logits.gather(1, safe[rows])[:, 0]
            top = logits.amax(-1, keepdim=True)
            exp = logits.sub_(top).exp_()  # in place: the chunk's logits are not needed again
            norm = exp.sum(-1, keepdim=True)
            total += ((top + norm.log())[:, 0] - picked).mul_(valid[rows]).sum()  # logsumexp - target logit
            if grads:
                g = exp.div_(norm)  # softmax
                g.scatter_add_(1, safe[rows], -valid[rows, None].float())  # minus the one-hot
                g = g.to(dtype)
                keep = valid[rows, None].to(dtype)  # ignored rows: mask the narrow factors, not g
                grad_h[rows] = (g @ wx).mul_(keep)
                if dtype == torch.float32:
                    grad_w.addmm_(g.t(), hx[rows] * keep)
                else:
                    grad_w.add_(g.t() @ (hx[rows] * keep))  # accumulate the chunks in fp32
        count = valid.sum()
        ctx.save_for_backward(grad_h, grad_w, count)
        ctx.weight_dtype = weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w, count = ctx.saved_tensors
        scale = grad_loss / count
        return (grad_h * scale).to(grad_h.dtype), (grad_w * scale).to(ctx.weight_dtype), None, None, None, None


def init_parameters(module: nn.Module, init_weight: Callable[[str, nn.Parameter], None]) -> None:
    """Norm scales to 1 and biases to 0, every other parameter by `init_weight(name, p)`, in parameter
    order (so the RNG draws are those of a hand-written loop): the part Toto's and the MAE's inits share."""
    for name, p in module.named_parameters():
        if name.endswith("norm.weight"):
            nn.init.ones_(p)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
        else:
            init_weight(name, p)
