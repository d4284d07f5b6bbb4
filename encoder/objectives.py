"""Training objectives of the Toto transformer (paper section 3 and Table 3).

Both compute the loss in fp32 whatever the autocast dtype: the logits of an 8k vocabulary in
bf16 lose enough precision to bias the cross-entropy. They call the model itself, never its
submodules, so they work unchanged on a DDP/FSDP-wrapped or compiled model; the token loss asks
the model for it (`targets=`), which fuses the head with the cross-entropy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from encoder.tokens import PAD


def next_token_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting tokens[:, 1:] from tokens[:, :-1]; PAD targets are ignored."""
    return model(tokens[:, :-1], targets=tokens[:, 1:], return_logits=False).loss


@torch.no_grad()
def next_token_losses(model, tokens: torch.Tensor, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position cross-entropy (B, T-1) of predicting tokens[:, 1:], fp32, and the mask of non-PAD
    targets (padded positions hold 0). For evaluation (Fig. 10's loss per position): it asks the
    model for its logits, then scores them `chunk` positions at a time so the fp32 copy stays small."""
    targets = tokens[:, 1:]
    return _cross_entropy_by_position(model(tokens[:, :-1]).logits, targets, chunk, ignore_index=PAD), targets != PAD


def _cross_entropy_by_position(logits: torch.Tensor, targets: torch.Tensor, chunk: int, ignore_index: int = -100) -> torch.Tensor:
    """(B, T) fp32 cross-entropy of each position, `chunk` positions at a time so the fp32 copy of the logits stays small."""
    return torch.cat([F.cross_entropy(logits[:, s:s + chunk].float().transpose(1, 2), targets[:, s:s + chunk],
                                      ignore_index=ignore_index, reduction="none") for s in range(0, targets.shape[1], chunk)], 1)


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch to zero mean, unit variance over its own values (MAE's norm_pix_loss target)."""
    patches = patches.float()
    mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def next_patch_loss(model, patches: torch.Tensor) -> torch.Tensor:
    """MSE between the prediction at each position and the next patch, normalized per patch.

    "patch-patch" in the paper's Table 3: raw patches in, next normalized patch out.
    """
    pred = model(patches[:, :-1]).logits
    return F.mse_loss(pred.float(), normalize_patches(patches[:, 1:]))


def next_code_loss(model, patches: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the next patch's code from the patches so far.

    "patch-dVAE" in the paper's Table 3: raw patches in, the next patch's discrete token out
    (`codes` (B, T), from a discrete tokenizer, aligned with `patches` (B, T, patch_dim)).
    """
    return model(patches[:, :-1], targets=codes[:, 1:], return_logits=False).loss


@torch.no_grad()
def next_code_losses(model, patches: torch.Tensor, codes: torch.Tensor, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position cross-entropy (B, T-1) of `next_code_loss`, fp32, and its mask (every target counts)."""
    targets = codes[:, 1:]
    return _cross_entropy_by_position(model(patches[:, :-1]).logits, targets, chunk), torch.ones_like(targets, dtype=torch.bool)
