"""The frozen Toto encoder: uint8 pixels -> tokenizer -> Toto blocks up to layer L -> pooled features.

This is what robot policies and probes see (docs/design.md sections 1 and 8): the paper's robotics
protocol reads the tokens of an intermediate block (the best probing layer is near 50% depth),
average pools them and trains only a small head on top. So the encoder

- runs only the blocks it needs (`layer` = number of blocks run; the rest of the model, final
  norm and head are never computed: reading layer 6 of 12 costs half a full pass);
- treats a single frame as an image, `[IMAGE_START, 256 codes]`, and a clip as a video,
  `[VIDEO_START, codes of frame 1 .. T]`, as in pre-training (encoder/tokens.py); the start token
  is dropped from the features;
- is frozen: eval mode, no parameter requires grad, every entry point runs under no_grad, so a
  trainable head on its features never back-propagates into it;
- streams: `encoder.stream()` encodes a live camera feed one frame at a time with a KV cache of
  the recent past (see `FrameStream`).

    encoder = load_encoder("runs/pretrain/encoder", layer="mid", pool="avg")  # dtype/device "auto"
    encoder(frames)                      # (B, dim)      frames: uint8 (B, 128, 128, 3)
    encoder.token_features(frames, [1, 2, 3])   # {layer: (B, 256, dim)}: every probe layer in one pass
    encoder.frame_features(clips)        # (B, T, dim)   clips: uint8 (B, T, 128, 128, 3), causal
    stream = encoder.stream(context_frames=15); stream(frame_t)   # (B, dim) per new frame

Features are returned in fp32 whatever `dtype` the transformer runs in.
"""
from __future__ import annotations

import numbers
from functools import partial
from pathlib import Path

import torch

from encoder import tokens as token_ids
from encoder.frozen_base import DEFAULT_LAYER, FrozenEncoder, encoder_compute, resolve_layer
from encoder.frozen_mae import load_mae_encoder
from encoder.layers import KVCache, apply_rope
from encoder.model import Toto, TotoConfig, load_toto
from encoder.pooling import ENCODER_POOL, make_pool, pool_width
from encoder.tokenizers import load_tokenizer
from toto_robot.checkpoint import CheckpointError, read_fields, read_meta

__all__ = ["FrameStream", "TotoEncoder", "load_encoder", "resolve_layer"]  # resolve_layer: encoder/frozen_base.py

_WHAT_TO_PASS = "pass the encoder directory the pre-training export stage writes (toto.* + tokenizer.*, e.g. runs/pretrain/encoder)"


def _mismatch(model: Toto, tokenizer, resolution: int) -> str | None:
    """Why this model, tokenizer and frame size cannot work together (None if they can)."""
    c = model.config
    if tokenizer.discrete == (c.patch_dim is not None):
        return f"a {'token-id' if c.patch_dim is None else 'patch'} model cannot read {tokenizer.kind!r} tokenizer output"
    if tokenizer.discrete and tokenizer.codebook_size + token_ids.CODE_OFFSET > c.vocab_size:
        return f"the tokenizer's {tokenizer.codebook_size} codes do not fit the model's vocabulary of {c.vocab_size}"
    if not tokenizer.discrete and tokenizer.patch_dim != c.patch_dim:
        return f"the tokenizer's patches have {tokenizer.patch_dim} values, the model reads {c.patch_dim}"
    if resolution % tokenizer.downsample:
        return f"resolution {resolution} is not a multiple of the tokenizer's downsampling {tokenizer.downsample}"
    return None


class TotoEncoder(FrozenEncoder):
    """Frozen Toto features of frames or clips, stopping at block `layer` (see the module docstring).

    pool="avg" averages the tokens; pool="grid<k>" averages k x k regions of the frame and concatenates them
    (`feature_dim` = k*k*dim: keeps where things are). pool="attn" holds an *untrained* `AttentionPool` (frozen like
    everything else here): a probe trains its own `AttentionPool(encoder.dim)` on
    `token_features`, then deploys it with `encoder.pool_module.load_state_dict(trained.state_dict())`
    (a one-head pool; one with more heads replaces it: `encoder.pool_module = trained.requires_grad_(False)`).
    """

    kind = "toto"

    def __init__(self, model: Toto, tokenizer, *, resolution: int, layer, pool: str, frames: int | None = None,
                 dtype="auto", device="auto"):
        super().__init__()
        problem = _mismatch(model, tokenizer, resolution)
        if problem:
            raise ValueError(problem)
        c = model.config
        self.n_layers, self.dim = c.n_layers, c.dim
        self.layer = resolve_layer(layer, c.n_layers)
        self.pool = pool
        self.pool_module = make_pool(pool, c.dim)
        self.feature_dim = pool_width(pool, c.dim)  # what forward returns per frame (dim, or cells^2 * dim for grid<k>)
        self.compute = encoder_compute(dtype, device)  # toto_robot/compute.py: the device and dtype, and why
        self.dtype = self.compute.dtype
        self.model = model.to(self.dtype)
        self.tokenizer = tokenizer  # stays fp32: FSQ rounds latents to codes, bf16 would flip codes
        self.resolution, self.grid = resolution, resolution // tokenizer.downsample
        self.n_start = 1 if tokenizer.discrete else 0  # patch sequences have no start token
        self.frames = frames or (c.max_seq_len - self.n_start - 1) // self.grid**2  # longest clip
        self._freeze(self.compute)  # model, tokenizer (fp32) and pool

    # -- inputs ------------------------------------------------------------------------------------
    def _tokenize(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) -> (N, g*g) token ids, or (N, g*g, patch_dim) patches, on the model's device."""
        out = self.tokenizer.encode(frames)
        device = self.model.norm.weight.device
        if self.tokenizer.discrete:
            return token_ids.codes_to_ids(out.flatten(1).long()).to(device)
        return out.flatten(1, 2).to(device, self.dtype)

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Checked frames or clips -> the model's input sequences (start token first if discrete)."""
        B = x.shape[0]
        seq = self._tokenize(x.flatten(0, 1) if x.ndim == 5 else x)
        if not self.n_start:
            return seq.reshape(B, -1, seq.shape[-1])
        seq = seq.reshape(B, -1)
        start = token_ids.VIDEO_START if x.ndim == 5 else token_ids.IMAGE_START
        return torch.cat([seq.new_full((B, 1), start), seq], dim=1)

    def token_ids(self, x) -> torch.Tensor:
        """(B, L) ids: [IMAGE_START, codes] per frame (each frame its own sequence, as images are
        in pre-training) or [VIDEO_START, codes of frames 1..T] per clip; no END token."""
        if not self.n_start:
            raise ValueError("this encoder reads continuous patches: it has no token ids (use token_features)")
        return self._sequence(self.check(x))

    # -- features ----------------------------------------------------------------------------------
    def _hidden(self, inputs: torch.Tensor, layers: list[int], cache: KVCache | None = None) -> dict[int, torch.Tensor]:
        """Outputs of blocks `layers` (1-based) from ONE forward that stops at max(layers).

        Earlier layers are caught with forward hooks rather than output_hidden_states, so only the
        requested ones are kept alive (a clip batch at base is ~13 MB a clip per layer).
        """
        top, caught = max(layers), {}
        hooks = [self.model.layers[n - 1].register_forward_hook(partial(_catch, caught, n)) for n in layers if n != top]
        try:
            caught[top] = self.model(inputs, cache=cache, num_layers=top, return_logits=False).last_hidden
        finally:
            for hook in hooks:
                hook.remove()
        return caught

    @torch.no_grad()
    def token_features(self, x, layers=None) -> dict[int, torch.Tensor]:
        """{layer: (B, N, dim) fp32} hidden states after each requested block (default [self.layer]),
        start token dropped (N = 256 a frame, T*256 a clip). Keys are the resolved block numbers
        ("mid" -> n_layers // 2, -1 -> n_layers, ...). One forward serves all layers: probes
        read every layer at once."""
        if layers is None or isinstance(layers, (str, numbers.Real)):
            layers = [self.layer if layers is None else layers]
        layers = sorted({resolve_layer(n, self.n_layers) for n in layers})
        if not layers:
            raise ValueError(f"layers=[]: ask for at least one block 1..{self.n_layers}")
        hidden = self._hidden(self._sequence(self.check(x)), layers)
        return {n: h[:, self.n_start:].float() for n, h in sorted(hidden.items())}

    @torch.no_grad()
    def forward(self, x) -> torch.Tensor:
        """(B, dim): frames (B, H, W, 3) -> one vector per frame; clips (B, T, H, W, 3) -> one
        vector per clip, pooled over all its visual tokens."""
        return self.pool_module(self.token_features(x)[self.layer])

    @torch.no_grad()
    def frame_features(self, clips) -> torch.Tensor:
        """(B, T, dim): each frame's tokens pooled, the clip encoded at once (causal: frame t sees
        frames 1..t). Equal to what `stream()` returns frame by frame for T <= context_frames + 1."""
        clips = self.check(clips, ndim=(5,))
        B, T = clips.shape[:2]
        tokens = self.token_features(clips)[self.layer]
        return self.pool_module(tokens.reshape(B * T, self.tokens_per_frame, self.dim)).view(B, T, self.feature_dim)

    def stream(self, context_frames: int = 15) -> FrameStream:
        """A `FrameStream`: per-frame features of a live video, attending to the last `context_frames` frames."""
        return FrameStream(self, context_frames)

    def extra_repr(self) -> str:
        return (f"layer={self.layer}/{self.n_layers}, dim={self.dim}, pool={self.pool!r}, dtype={self.dtype}, "
                f"resolution={self.resolution}, grid={self.grid}, frames={self.frames}")


def _catch(store: dict, n: int, module, args, output) -> None:
    store[n] = output


def _rotation(config, position: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 cos/sin (head_dim,) of RoPE at `position`, by the formula of `encoder.layers.rope_tables`."""
    hd = config.head_dim
    inv_freq = 1.0 / (config.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float, device=device) / hd))
    angles = torch.tensor(float(position), device=device) * inv_freq
    angles = torch.cat((angles, angles))
    return angles.cos(), angles.sin()


class FrameStream:
    """Per-frame features of a live video without re-encoding the past: a KV cache holds the keys
    and values of the last `context_frames` frames, so each new frame's 256 tokens attend to the
    recent past without recomputing it.

    Cost: one frame's projections plus attention over the cached keys. At base with 15 frames of
    context the attention makes it ~1.6x the FLOPs of encoding the frame alone (measured 1.8-2.3x;
    benchmarks/encoder_latency.py), 5-12x cheaper than re-encoding the 16-frame window each step;
    3 frames of context cost ~1.1-1.3x.

    The first frame starts the sequence with VIDEO_START, so for T <= context_frames + 1 frames
    the stream gives exactly `frame_features` of the clip (up to float rounding).

    Past the window (what the sliding window means):
    - the oldest frame is dropped after each new one; frames still in the window keep the keys and
      values computed when they arrived, i.e. with their own (longer) past as context, so features
      are not those of a fresh run on the last context_frames + 1 frames (they are for a single
      block, where keys depend on the token alone: tested);
    - the start token is kept, not dropped: every token saw it at the head of its sequence in
      training (LLMs lean on their first token as an attention sink, StreamingLLM). Its key is
      re-rotated to sit right before the oldest retained frame (it is kept un-rotated: RoPE at
      position 0 is the identity), so every new frame sees exactly the relative layout of a fresh
      (context_frames + 1)-frame clip, never a distance it was not trained on. On the nano
      checkpoint and a real video, features past the window stay at cosine ~0.99 to a fresh
      16-frame clip (a single-image encoding of the same frame: ~0.6);
    - RoPE positions keep counting (keys are stored rotated), but not forever: when they would pass
      `rebase_at` (4 x max_seq_len) every cached key is rotated back by the window's offset, in
      fp32, and positions restart at 0. Scores depend on relative positions only, so this changes
      nothing but rounding; it bounds the model's RoPE table and keeps the fp32 angles accurate.
      One re-base costs about one element-wise pass over the cache, every ~48 frames at 16x16 tokens.

    The batch is B parallel streams; call `reset()` to start new videos (or change B).
    """

    def __init__(self, encoder: TotoEncoder, context_frames: int = 15):
        if not isinstance(context_frames, numbers.Integral) or isinstance(context_frames, bool) or context_frames < 0:
            raise ValueError(f"context_frames={context_frames!r}: use an int >= 0")
        self.encoder, self.context_frames = encoder, int(context_frames)
        g2 = encoder.tokens_per_frame
        self.window = self.context_frames * g2 + encoder.n_start  # tokens kept between frames
        self.rebase_at = max(4 * encoder.model.config.max_seq_len, self.window + 8 * g2)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next frame starts a new video (a new VIDEO_START)."""
        self.cache: KVCache | None = None
        self.frames_seen = 0
        self._sink: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._batch = 0

    @torch.no_grad()
    def __call__(self, frames) -> torch.Tensor:
        """uint8 frames (B, H, W, 3), the next frame of each of the B streams -> (B, dim) fp32."""
        enc = self.encoder
        frames = enc.check(frames, ndim=(4,))
        new = enc._tokenize(frames)
        if self.cache is None:
            self.cache, self._batch = KVCache(), len(frames)
            if enc.n_start:
                new = torch.cat([new.new_full((len(frames), 1), token_ids.VIDEO_START), new], dim=1)
        elif len(frames) != self._batch:
            raise ValueError(f"this stream holds {self._batch} videos, got a batch of {len(frames)}: call reset() first")
        elif self.cache.position + new.shape[1] > self.rebase_at:
            self._rebase()
        hidden = enc._hidden(new, [enc.layer], self.cache)[enc.layer]
        if self.frames_seen == 0 and enc.n_start:
            self._sink = [(k[:, :, :1].clone(), v[:, :, :1].clone()) for k, v in zip(self.cache.keys, self.cache.values)]
        self.frames_seen += 1
        self._slide()
        return enc.pool_module(hidden[:, -enc.tokens_per_frame:].float())

    def _slide(self) -> None:
        """Keep the last context_frames frames, plus the start token just before them."""
        cache = self.cache
        if cache.length <= self.window:
            return
        cache.keep_last(self.window)  # with a start token, its slot is the dropped frame's last token
        if self._sink:
            cos, sin = _rotation(self.encoder.model.config, cache.offset, cache.keys[0].device)
            for keys, values, (k0, v0) in zip(cache.keys, cache.values, self._sink):
                keys[:, :, :1] = apply_rope(k0.float(), cos, sin).to(keys.dtype)  # in place: one token a block
                values[:, :, :1] = v0

    def _rebase(self) -> None:
        """Rotate every cached key back by the cache's offset so positions restart at 0."""
        cache = self.cache
        if cache.offset == 0:
            return
        cos, sin = _rotation(self.encoder.model.config, cache.offset, cache.keys[0].device)
        cache.keys = [apply_rope(k.float(), cos, -sin).to(k.dtype) for k in cache.keys]  # R(-offset)
        cache.offset = 0


def load_encoder(path, layer=DEFAULT_LAYER, pool: str | None = None, dtype: torch.dtype | str | None = "auto",
                 device: str = "auto") -> TotoEncoder:
    """The frozen encoder in `path`, an encoder directory (toto.safetensors/.json + tokenizer.*,
    written by the pre-training export stage), or the MAE baseline's export (mae.* + tokenizer.*, from
    `python pretrain/run.py objective=mae`: a `MAEEncoder`, encoder/frozen_mae.py). layer: see
    `resolve_layer`; pool: "avg", "attn" or "grid<k>" (untrained, see `TotoEncoder`), or "cls" for an MAE;
    None: "avg" for Toto, "cls" (MVP's feature) for an MAE; dtype: "auto" (bf16 where the hardware runs it natively, else fp32:
    toto_robot/compute.py), "fp32" (or None) or "bf16" (bf16 transformer weights: ~2x fp32 on an AMX
    CPU, ~50x slower on an AVX2-only one; the tokenizer stays fp32); device: auto|cpu|cuda|cuda:N.

    Raises CheckpointError (one line, saying what to pass) for a missing path or a checkpoint of
    another kind, ValueError for a bad layer, pool or dtype.
    """
    encoder_compute(dtype, device)
    directory = Path(path).expanduser()
    if directory.is_file() and directory.name in ("toto.json", "toto.safetensors", "mae.json", "mae.safetensors"):
        directory = directory.parent
    if not directory.is_dir():
        raise CheckpointError(f"encoder directory {path} not found: {_WHAT_TO_PASS}")
    if (directory / "mae.json").is_file() and not (directory / "toto.json").is_file():
        return load_mae_encoder(directory, layer=layer, pool=pool or ENCODER_POOL["mae"], dtype=dtype, device=device)
    pool = pool or ENCODER_POOL["toto"]
    make_pool(pool, 8)  # a bad pool or layer fails before any weights load
    if not (directory / "toto.json").is_file():
        found = "a tokenizer checkpoint" if (directory / "tokenizer.json").is_file() else "no toto.json"
        raise CheckpointError(f"{directory} holds {found}, not an encoder: {_WHAT_TO_PASS}")
    meta = read_meta(directory, "toto")
    if meta.get("kind") != "toto":
        raise CheckpointError(f"{directory}/toto.json holds a {meta.get('kind')!r} checkpoint, not Toto weights: {_WHAT_TO_PASS}")
    tokenizer_name = meta.get("tokenizer")
    if not tokenizer_name or "resolution" not in meta or not (directory / f"{tokenizer_name}.json").is_file():
        raise CheckpointError(f"{directory} holds Toto weights without a tokenizer (a training checkpoint?): {_WHAT_TO_PASS}")
    read_fields(meta.get("config"), TotoConfig, f"{directory}/toto.json", require_all=True)  # before the layer reads n_layers
    resolve_layer(layer, meta["config"]["n_layers"])
    try:
        model = load_toto(directory)
    except (RuntimeError, TypeError) as error:  # weights that do not match their config
        raise CheckpointError(f"{directory}/toto.safetensors does not match toto.json ({str(error).splitlines()[0]})") from None
    tokenizer = load_tokenizer(directory / f"{tokenizer_name}.safetensors")
    resolution = int(meta["resolution"])
    problem = _mismatch(model, tokenizer, resolution)
    if problem:
        raise CheckpointError(f"{directory}: {problem}")
    return TotoEncoder(model, tokenizer, resolution=resolution, frames=meta.get("frames"), layer=layer, pool=pool, dtype=dtype,
                       device=device)
