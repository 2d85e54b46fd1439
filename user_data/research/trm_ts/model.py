"""The TRM-TS network: a tiny recursive model that refines a latent state over candle windows.

Dimension letters used in shapes throughout the package:

    B  batch size
    T  time steps in a window (candles, oldest first, newest last)
    F  features per candle
    D  latent width (``latent_dim``)
    H  forecast outputs (``forecast_horizon``)
    S  recursion steps of the TRM core
    C  cross-asset context width (``ctx_dim``)

Data flow, smallest block first in this file:

    x (B, T, F) -> FeatureEmbed + CrossFeatureAttention -> + learned position -> (B, T, D)
      -> MultiScaleEncoder (one transformer per trailing scale, pooled)        -> scale_latent (B, D)
      -> TemporalTransformer (full window, pooled)                             -> pooled (B, D), tokens (B, T, D)
    z0 = pooled + scale_latent + regime / calendar / context embeddings        -> (B, D)
    TRMCore: S times { read tokens by cross-attention, update z with gated memory,
                       recondition tokens with FiLM, update memory }           -> z (B, D)
    DistributionalHead(z) -> mean (B, H), logvar (B, H), logvar bounded
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F_nn
from torch import nn

# Calendar vocabulary sizes: hour of day and day of week (Monday = 0), both in UTC.
N_HOURS = 24
N_DAYS = 7


@dataclass
class TRMTSConfig:
    """Hyperparameters of one TRM-TS network; stored verbatim in every checkpoint."""

    n_features: int
    latent_dim: int = 32
    recursive_steps: int = 4
    forecast_horizon: int = 1
    multi_scales: tuple[int, ...] = (16, 64)
    n_regimes: int = 8
    ctx_dim: int = 0
    attn_heads: int = 2
    dropout: float = 0.2
    # Maximum window length of the learned position table; shorter windows use its newest rows.
    max_len: int = 256
    # Bounds of the predicted log-variance in training-target units. With standardized
    # targets, exp(-12 / 2) and exp(8 / 2) give sigma between 0.0025 and 55 target stds.
    logvar_min: float = -12.0
    logvar_max: float = 8.0
    ffn_mult: int = 2
    use_calendar: bool = True

    def __post_init__(self) -> None:
        self.multi_scales = tuple(int(s) for s in self.multi_scales)
        checks = [
            ("n_features", self.n_features, self.n_features >= 1, "an integer >= 1"),
            ("latent_dim", self.latent_dim, self.latent_dim >= 2, "an integer >= 2"),
            ("attn_heads", self.attn_heads, self.attn_heads >= 1, "an integer >= 1"),
            (
                "recursive_steps",
                self.recursive_steps,
                self.recursive_steps >= 1,
                "an integer >= 1",
            ),
            (
                "forecast_horizon",
                self.forecast_horizon,
                self.forecast_horizon >= 1,
                "an integer >= 1",
            ),
            ("n_regimes", self.n_regimes, self.n_regimes >= 1, "an integer >= 1"),
            ("ctx_dim", self.ctx_dim, self.ctx_dim >= 0, "an integer >= 0"),
            ("dropout", self.dropout, 0.0 <= self.dropout < 1.0, "a float in [0, 1)"),
            ("max_len", self.max_len, self.max_len >= 1, "an integer >= 1"),
            (
                "multi_scales",
                self.multi_scales,
                len(self.multi_scales) >= 1 and all(s >= 1 for s in self.multi_scales),
                "a non-empty sequence of integers >= 1",
            ),
            (
                "logvar_min",
                self.logvar_min,
                self.logvar_min < self.logvar_max,
                f"a value below logvar_max={self.logvar_max}",
            ),
        ]
        for name, value, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} is invalid; it must be {allowed}")
        if self.latent_dim % self.attn_heads != 0:
            raise ValueError(
                f"latent_dim={self.latent_dim} is not divisible by attn_heads={self.attn_heads}; "
                f"choose latent_dim as a multiple of attn_heads"
            )

    def to_dict(self) -> dict:
        """Return the config as plain data (lists, not tuples) for JSON and checkpoints."""
        data = asdict(self)
        data["multi_scales"] = list(self.multi_scales)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TRMTSConfig:
        """Build a config from ``to_dict`` output; unknown keys raise with the accepted list."""
        accepted = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - accepted)
        if unknown:
            raise ValueError(
                f"unknown TRM-TS model config keys {unknown}; accepted keys: {sorted(accepted)}"
            )
        return cls(**data)


class RMSNorm(nn.Module):
    """Root-mean-square norm: rescales without mean-centering, so the sign of a drift survives."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


class ResidualGate(nn.Module):
    """Gated residual ``x + sigmoid(Linear(h)) * h``: each channel learns how much update to take."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, dim)
        # Start half-open so early training neither ignores nor fully trusts a fresh branch.
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return x + torch.sigmoid(self.gate(h)) * h


class Attention(nn.Module):
    """Multi-head scaled dot-product attention of queries over a key/value sequence.

    Dropout acts on the output, not on the (B, heads, T, T) weight matrix: same
    regularization role, and on CPU sampling that matrix cost a fifth of a training step.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        N, Q, D = query.shape
        K = context.shape[1]
        d_head = D // self.heads
        q = self.q(query).reshape(N, Q, self.heads, d_head).transpose(1, 2)  # (N, h, Q, d)
        k, v = self.kv(context).reshape(N, K, 2, self.heads, d_head).permute(2, 0, 3, 1, 4)
        attended = F_nn.scaled_dot_product_attention(q, k, v)  # (N, h, Q, d)
        attended = attended.transpose(1, 2).reshape(N, Q, D)  # (N, Q, D)
        return self.dropout(self.out(attended))


class FeatureEmbed(nn.Module):
    """Per-candle MLP that maps F heterogeneous indicators into the D-wide latent space."""

    def __init__(self, n_features: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(x))  # (N, F) -> (N, D)


class CrossFeatureAttention(nn.Module):
    """Multi-head attention across features inside each candle.

    Tokens: every feature is one token. Its vector is ``value * w_f + b_f``, a learned
    per-feature direction scaled by the (standardized) value plus a learned identity offset,
    so the attention can relate, for example, volume z-score and return sign within a candle.
    The attended tokens are mean-pooled and projected to one D-vector per candle.
    """

    def __init__(self, n_features: int, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.value_weight = nn.Parameter(torch.randn(n_features, dim) / math.sqrt(dim))
        self.feature_bias = nn.Parameter(torch.zeros(n_features, dim))
        self.norm = RMSNorm(dim)
        self.attn = Attention(dim, heads, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, F = x.shape  # N candles, each on its own
        tokens = x.unsqueeze(-1) * self.value_weight + self.feature_bias  # (N, F, D)
        h = self.norm(tokens)
        attended = self.attn(h, h)  # (N, F, D)
        return (tokens + attended).mean(dim=1)  # (N, D)


class TinyTransformerBlock(nn.Module):
    """Pre-norm transformer block with RMSNorm and gated residuals around attention and FFN."""

    def __init__(self, dim: int, heads: int, dropout: float, ffn_mult: int = 2) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.attn_gate = ResidualGate(dim)
        self.ffn_norm = RMSNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_mult * dim, dim),
        )
        self.ffn_gate = ResidualGate(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.attn_norm(x)
        x = self.attn_gate(x, self.attn(h, h))  # (B, T, D)
        return self.ffn_gate(x, self.ffn(self.ffn_norm(x)))  # (B, T, D)


class MultiScaleEncoder(nn.Module):
    """One small transformer per trailing scale; pooled views are concatenated and projected.

    A scale longer than the window uses the whole window.
    """

    def __init__(self, scales: tuple[int, ...], dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.blocks = nn.ModuleList(TinyTransformerBlock(dim, heads, dropout) for _ in scales)
        self.proj = nn.Linear(len(scales) * dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pooled = [block(h[:, -scale:]).mean(dim=1) for scale, block in zip(self.scales, self.blocks)]
        return self.proj(torch.cat(pooled, dim=-1))  # (B, len(scales) * D) -> (B, D)


class TRMCore(nn.Module):
    """Recurrent refinement of the latent ``z`` against the token sequence.

    Each step: (a) ``z`` reads the tokens by cross-attention, (b) ``z = core(z + read, m)``
    with a gated residual MLP that also reads the memory, (c) FiLM-style reconditioning of the
    tokens from ``z``, (d) a GRU-style gated update of the memory ``m``.

    Gradient policy: every step stays in the autograd graph (no detach between steps), so the
    loss on the last step, or on every step under deep supervision, trains all steps. With
    S <= 8 and D = 32 the extra activation memory is small.
    """

    # Initial weight of the FiLM reconditioning, so the first steps barely move the tokens.
    FILM_SCALE_INIT = 0.1

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.memory_proj = nn.Linear(dim, dim)
        self.read_query_norm = RMSNorm(dim)
        self.read_token_norm = RMSNorm(dim)
        self.read = Attention(dim, heads, dropout)
        self.core_norm = RMSNorm(2 * dim)
        self.core = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.core_gate = ResidualGate(dim)
        self.dropout = nn.Dropout(dropout)
        self.adapter = nn.Linear(dim, 2 * dim)
        self.film_scale = nn.Parameter(torch.tensor(self.FILM_SCALE_INIT))
        self.memory_gates = nn.Linear(2 * dim, 2 * dim)
        self.memory_candidate = nn.Linear(2 * dim, dim)

    def step(
        self, z: torch.Tensor, memory: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # (a) read: the latent queries the token sequence.
        query = self.read_query_norm(z).unsqueeze(1)  # (B, 1, D)
        keys = self.read_token_norm(tokens)
        read = self.read(query, keys)  # (B, 1, D)
        u = z + read.squeeze(1)  # (B, D)

        # (b) latent update conditioned on memory.
        h = self.core(self.core_norm(torch.cat([u, memory], dim=-1)))
        z = self.dropout(self.core_gate(u, h))  # (B, D)

        # (c) FiLM reconditioning of the tokens from the new latent.
        gamma, beta = self.adapter(z).unsqueeze(1).chunk(2, dim=-1)  # (B, 1, D) each
        tokens = tokens + self.film_scale * (gamma * tokens + beta)  # (B, T, D)

        # (d) GRU-style memory update.
        reset, update = torch.sigmoid(self.memory_gates(torch.cat([z, memory], dim=-1))).chunk(2, -1)
        candidate = torch.tanh(self.memory_candidate(torch.cat([z, reset * memory], dim=-1)))
        memory = (1.0 - update) * memory + update * candidate  # (B, D)
        return z, memory, tokens


class DistributionalHead(nn.Module):
    """Map the latent to a Gaussian: the one place where the log-variance is bounded.

    ``logvar = min + (max - min) * sigmoid(raw)`` keeps ``exp(logvar)`` finite and positive
    for any input, with a gradient everywhere (a hard clamp would have none outside the range).
    """

    def __init__(self, dim: int, horizon: int, logvar_min: float, logvar_max: float) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.mean = nn.Linear(dim, horizon)
        self.logvar = nn.Linear(dim, horizon)
        self.logvar_min = logvar_min
        self.logvar_range = logvar_max - logvar_min
        # Start at logvar = 0: unit variance, the variance of a standardized target.
        nn.init.zeros_(self.mean.bias)
        nn.init.constant_(self.logvar.bias, math.log(-logvar_min / logvar_max))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(z)
        logvar = self.logvar_min + self.logvar_range * torch.sigmoid(self.logvar(h))
        return self.mean(h), logvar  # (B, H), (B, H)


class TRMTS(nn.Module):
    """Tiny recursive model for probabilistic forecasting of forward returns."""

    def __init__(self, config: TRMTSConfig) -> None:
        super().__init__()
        self.config = config
        D = config.latent_dim
        self.feature_embed = FeatureEmbed(config.n_features, D)
        self.cross_feature = CrossFeatureAttention(
            config.n_features, D, config.attn_heads, config.dropout
        )
        # Learned positions, indexed from the newest candle backwards: "k candles ago" keeps one
        # meaning whatever the window length. Small init keeps early training feature-driven.
        self.position = nn.Parameter(torch.randn(config.max_len, D) * 0.02)
        self.multi_scale = MultiScaleEncoder(
            config.multi_scales, D, config.attn_heads, config.dropout
        )
        self.temporal = TinyTransformerBlock(D, config.attn_heads, config.dropout, config.ffn_mult)
        self.temporal_norm = RMSNorm(D)
        self.fusion_dropout = nn.Dropout(config.dropout)
        self.regime_embed = nn.Embedding(config.n_regimes, D)
        self.hour_embed = nn.Embedding(N_HOURS, D)
        self.day_embed = nn.Embedding(N_DAYS, D)
        self.ctx_proj = nn.Linear(config.ctx_dim, D) if config.ctx_dim > 0 else None
        for table in (self.regime_embed, self.hour_embed, self.day_embed):
            nn.init.normal_(table.weight, std=0.02)
        self.core = TRMCore(D, config.attn_heads, config.dropout)
        self.head = DistributionalHead(
            D, config.forecast_horizon, config.logvar_min, config.logvar_max
        )

    def _check_index(self, name: str, index: torch.Tensor | None, size: int) -> None:
        if index is None:
            return
        if index.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"{name} must be an integer tensor, got dtype {index.dtype}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
            bad = index[(index < 0) | (index >= size)][0].item()
            raise ValueError(f"{name} index {bad} is out of range; allowed values are 0..{size - 1}")

    def _check_conditioning(self, B: int, regime, hour, day_of_week, ctx) -> None:
        cfg = self.config
        self._check_index("regime", regime, cfg.n_regimes)
        self._check_index("hour", hour, N_HOURS)
        self._check_index("day_of_week", day_of_week, N_DAYS)
        if cfg.ctx_dim > 0 and ctx is None:
            raise ValueError(f"ctx is required: the model was built with ctx_dim={cfg.ctx_dim}")
        if ctx is not None and (ctx.dim() != 2 or tuple(ctx.shape) != (B, cfg.ctx_dim)):
            raise ValueError(
                f"ctx must have shape (B, ctx_dim) = ({B}, {cfg.ctx_dim}), got {tuple(ctx.shape)}"
            )

    def _check_width(self, F: int) -> None:
        if F != self.config.n_features:
            raise ValueError(
                f"input has {F} features but the model was built with "
                f"n_features={self.config.n_features}"
            )

    def embed_candles(self, rows: torch.Tensor) -> torch.Tensor:
        """Embed candles independently of each other: (N, F) -> (N, D)."""
        return self.feature_embed(rows) + self.cross_feature(rows)

    def forward(
        self,
        x: torch.Tensor,
        regime: torch.Tensor | None = None,
        hour: torch.Tensor | None = None,
        day_of_week: torch.Tensor | None = None,
        ctx: torch.Tensor | None = None,
        steps: int | None = None,
        return_steps: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Predict the Gaussian of the forward return for each window.

        x: (B, T, F) scaled features, oldest candle first. regime, hour, day_of_week: (B,)
        integer indices at the newest candle, or None to leave that embedding out.
        ctx: (B, C) context at the newest candle. steps: recursion steps at inference
        (default ``recursive_steps``). Returns mean (B, H), logvar (B, H), latent (B, D) and,
        with ``return_steps``, step_mean and step_logvar (S, B, H): the head after every step.
        """
        if x.dim() != 3:
            raise ValueError(f"x must have shape (B, T, F), got {tuple(x.shape)}")
        B, T, F = x.shape
        self._check_width(F)
        h = self.embed_candles(x.reshape(B * T, F)).reshape(B, T, -1)  # (B, T, D)
        return self._forward_sequence(h, regime, hour, day_of_week, ctx, steps, return_steps)

    def forward_windows(
        self,
        rows: torch.Tensor,
        index: torch.Tensor,
        regime: torch.Tensor | None = None,
        hour: torch.Tensor | None = None,
        day_of_week: torch.Tensor | None = None,
        ctx: torch.Tensor | None = None,
        steps: int | None = None,
        return_steps: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Same result as ``forward(rows[index], ...)``, embedding each distinct candle once.

        rows: (N, F) scaled candles. index: (B, T) row numbers of each window, oldest first.
        Overlapping windows share candles, so a contiguous chunk of B windows embeds
        B + T - 1 candles instead of B * T.
        """
        if rows.dim() != 2 or index.dim() != 2:
            raise ValueError(
                f"rows must be (N, F) and index (B, T), got {tuple(rows.shape)} "
                f"and {tuple(index.shape)}"
            )
        self._check_width(rows.shape[1])
        unique_rows, inverse = torch.unique(index, return_inverse=True)  # (U,), (B, T)
        embedded = self.embed_candles(rows[unique_rows])  # (U, D)
        # index_select, not embedded[inverse]: its backward (index_add) sums in a fixed order on
        # CPU, so seeded training is bit-reproducible; advanced indexing's backward is not.
        h = embedded.index_select(0, inverse.reshape(-1)).reshape(*inverse.shape, -1)  # (B, T, D)
        return self._forward_sequence(h, regime, hour, day_of_week, ctx, steps, return_steps)

    def _forward_sequence(
        self,
        h: torch.Tensor,
        regime: torch.Tensor | None,
        hour: torch.Tensor | None,
        day_of_week: torch.Tensor | None,
        ctx: torch.Tensor | None,
        steps: int | None,
        return_steps: bool,
    ) -> dict[str, torch.Tensor]:
        B, T, D = h.shape
        if T > self.config.max_len:
            raise ValueError(
                f"window length {T} exceeds max_len={self.config.max_len}; "
                f"build the model with a larger max_len or use a shorter window"
            )
        self._check_conditioning(B, regime, hour, day_of_week, ctx)
        n_steps = self.config.recursive_steps if steps is None else steps
        if n_steps < 1:
            raise ValueError(f"steps={n_steps} is invalid; it must be an integer >= 1")

        h = h + self.position[-T:]  # (B, T, D)

        # Sequence encoders: trailing scales and the full-window temporal block.
        scale_latent = self.multi_scale(h)  # (B, D)
        tokens = self.temporal_norm(self.temporal(h))  # (B, T, D)
        pooled = tokens.mean(dim=1)  # (B, D)

        # Latent fusion with the per-window conditioning inputs.
        z0 = self.fusion_dropout(pooled + scale_latent)
        if regime is not None:
            z0 = z0 + self.regime_embed(regime.long())
        if self.config.use_calendar and hour is not None:
            z0 = z0 + self.hour_embed(hour.long())
        if self.config.use_calendar and day_of_week is not None:
            z0 = z0 + self.day_embed(day_of_week.long())
        if self.ctx_proj is not None:
            z0 = z0 + self.ctx_proj(ctx)

        # Recursive refinement.
        memory = torch.tanh(self.core.memory_proj(z0))  # (B, D)
        z = z0
        step_means, step_logvars = [], []
        for _ in range(n_steps):
            z, memory, tokens = self.core.step(z, memory, tokens)
            if return_steps:
                step_mean, step_logvar = self.head(z)
                step_means.append(step_mean)
                step_logvars.append(step_logvar)

        if return_steps:
            mean, logvar = step_means[-1], step_logvars[-1]
        else:
            mean, logvar = self.head(z)
        out = {"mean": mean, "logvar": logvar, "latent": z}
        if return_steps:
            out["step_mean"] = torch.stack(step_means)  # (S, B, H)
            out["step_logvar"] = torch.stack(step_logvars)  # (S, B, H)
        return out


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trm_ts(
    n_features: int,
    latent_dim: int = 32,
    recursive_steps: int = 4,
    forecast_horizon: int = 1,
    multi_scales: tuple[int, ...] = (16, 64),
    n_regimes: int = 8,
    ctx_dim: int = 0,
    attn_heads: int = 2,
    dropout: float = 0.2,
    max_len: int = 256,
    use_calendar: bool = True,
) -> TRMTS:
    """Build a TRM-TS network; arguments are validated by ``TRMTSConfig``."""
    config = TRMTSConfig(
        n_features=n_features,
        latent_dim=latent_dim,
        recursive_steps=recursive_steps,
        forecast_horizon=forecast_horizon,
        multi_scales=tuple(multi_scales),
        n_regimes=n_regimes,
        ctx_dim=ctx_dim,
        attn_heads=attn_heads,
        dropout=dropout,
        max_len=max_len,
        use_calendar=use_calendar,
    )
    return TRMTS(config)
