"""The torch backend of `cosmicai.engine.Engine`: a folded copy of AstroMAE run eagerly.

`FoldedAstroMAE` is built from a model's weights (the model itself is left untouched):
BatchNorm folded into the convolutions, the 1x1 convolutions that share an input merged
into one, the first conv moved behind its average pool (both are linear), patch embedding
as one matmul, channels-last convolutions, Linear layers through oneDNN with their
ReLU/GELU fused where it offers them. Opt-in precisions change only the transformer
blocks' four Linear layers, which hold ~85% of the arithmetic: `bf16` (bfloat16 weights
and activations, fp32 residual stream) or `int8` (dynamically quantized, per-channel
weights). Everything else stays fp32 because it is cheap and precision-sensitive:
magnitudes near 18 are only 0.06 apart in bf16 or 8-bit, which alone moved z by 4e-2,
and bf16 convolutions added 1.3e-3.

This module imports torch; `cosmicai.engine` imports it only when the torch backend runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cosmicai import procstats
from cosmicai.contracts import PRECISIONS
from cosmicai.engine import EngineError
from cosmicai.model import (
    EMBED_DIM,
    IMAGE_BANDS,
    IMAGE_SIZE,
    NUM_HEADS,
    PATCH_SIZE,
    AstroMAE,
    Block,
    ConvBlock,
    InceptionBlock,
    layers,
    linears,
)


class _Linear(nn.Module):
    """y = x W^T + b in the engine's precision, with an optional fused activation."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, precision: str, act: str = "none") -> None:
        super().__init__()
        self.precision = precision
        self.act = act
        weight = weight.detach().float().contiguous()
        bias = bias.detach().float().contiguous()
        if precision == "int8":
            # Per-output-channel scales: rows of very different norms keep their precision.
            scales = (weight.abs().amax(dim=1).clamp_min(1e-12) / int8_weight_max()).double()
            zeros = torch.zeros(weight.shape[0], dtype=torch.long)
            with warnings.catch_warnings():
                # The quantized-tensor API still works in this torch; its deprecation notice is noise here.
                warnings.simplefilter("ignore", UserWarning)
                qweight = torch.quantize_per_channel(weight, scales, zeros, 0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(qweight, bias)
            self.weight: torch.Tensor | None = None
            self.bias: torch.Tensor | None = None
        else:
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            self.weight = weight.to(dtype)
            self.bias = bias.to(dtype)
            self.packed = None
        # oneDNN's linear (activation fused) measured 7-14% faster than addmm on these shapes.
        self.fused = self.weight is not None and _has_linear_pointwise(self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None:  # int8: the packed weight holds the bias too
            y = torch.ops.quantized.linear_dynamic(x.float(), self.packed)
        else:
            x = x.to(self.weight.dtype)
            if self.fused:
                return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.act, [], "none")
            y = F.linear(x, self.weight, self.bias)
        if self.act == "gelu":
            return F.gelu(y)
        if self.act == "relu":
            return F.relu(y)
        return y


def int8_weight_max() -> int:
    """Largest int8 weight magnitude that fbgemm's kernels on this CPU multiply without overflow.

    Without AVX-512 VNNI, fbgemm sums pairs of uint8 x int8 products in saturating int16
    (255 * 127 * 2 > 32,767), so weights keep 7 bits there (255 * 63 * 2 fits); measured
    on the demo weights: max |dz| vs fp32 1.6e-3 with 7 bits, 0.9e-3 with 8.
    """
    return 127 if "avx512_vnni" in procstats.cpu_info()[1] else 63


_POINTWISE_OK: dict[torch.dtype, bool] = {}


def _has_linear_pointwise(dtype: torch.dtype = torch.float32) -> bool:
    """Whether oneDNN's fused Linear(+ReLU/GELU) op runs in `dtype` on this CPU and matches the unfused ops.

    Checked per dtype: CPUs without AVX-512 run it in fp32 but have no bf16 primitive.
    """
    if dtype not in _POINTWISE_OK:
        x, w, b = (t.to(dtype) for t in (torch.randn(4, 8), torch.randn(6, 8), torch.randn(6)))
        tol = 1e-5 if dtype == torch.float32 else 5e-2
        unfused: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "none": lambda y: y,
            "relu": F.relu,
            "gelu": F.gelu,
        }
        try:
            _POINTWISE_OK[dtype] = all(
                torch.allclose(
                    torch.ops.mkldnn._linear_pointwise(x, w, b, act, [], "none").float(),
                    fn(F.linear(x, w, b)).float(),
                    atol=tol,
                )
                for act, fn in unfused.items()
            )
        except (RuntimeError, AttributeError):
            _POINTWISE_OK[dtype] = False
    return _POINTWISE_OK[dtype]


def _present(tensor: torch.Tensor | None, what: str) -> torch.Tensor:
    """A tensor torch types as optional (a bias, BatchNorm statistics) that AstroMAE always has."""
    if tensor is None:
        raise EngineError(f"cannot fold the model: it has no {what}")
    return tensor


def _fold_bn(block: ConvBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias with the eval-mode BatchNorm folded in."""
    conv, bn = block.conv, block.bn
    mean = _present(bn.running_mean, "BatchNorm running mean")
    var = _present(bn.running_var, "BatchNorm running variance")
    scale = bn.weight / torch.sqrt(var + bn.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = (_present(conv.bias, "conv bias") - mean) * scale + bn.bias
    return weight.detach().float(), bias.detach().float()


class _Conv(nn.Module):
    """Conv2d (+ReLU) with folded BatchNorm, channels-last weights."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, padding: int, relu: bool) -> None:
        super().__init__()
        self.weight = weight.contiguous(memory_format=torch.channels_last)
        self.bias = bias
        self.padding = padding
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        return F.relu_(y) if self.relu else y


class _Inception(nn.Module):
    """Inception block with its shared-input 1x1 convs merged into one conv."""

    def __init__(self, block: InceptionBlock) -> None:
        super().__init__()
        self.use_5x5 = block.use_5x5
        firsts = [block.branch1, block.reduce3]
        if block.use_5x5:
            firsts.append(block.reduce5)
        folded = [_fold_bn(b) for b in firsts]
        self.width = folded[0][0].shape[0]
        self.merged = _Conv(torch.cat([w for w, _ in folded]), torch.cat([b for _, b in folded]), 0, True)
        self.conv3 = _Conv(*_fold_bn(block.conv3), padding=1, relu=True)
        self.conv5 = _Conv(*_fold_bn(block.conv5), padding=2, relu=True) if self.use_5x5 else None
        self.pool_conv = _Conv(*_fold_bn(block.pool_proj), padding=0, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.merged(x)
        w = self.width
        out = [first[:, :w], self.conv3(first[:, w : 2 * w])]
        if self.conv5 is not None:
            out.append(self.conv5(first[:, 2 * w : 3 * w]))
        out.append(self.pool_conv(F.max_pool2d(x, 3, stride=1, padding=1)))
        return torch.cat(out, dim=1)


class _Block(nn.Module):
    """Pre-norm transformer block on a flat (B*T, C) residual stream."""

    def __init__(self, block: Block, precision: str) -> None:
        super().__init__()
        self.ln1 = _layer_norm(block.norm1)
        self.ln2 = _layer_norm(block.norm2)
        self.qkv = _linear(block.attn.qkv, precision)
        self.proj = _linear(block.attn.proj, precision)
        self.fc1 = _linear(block.mlp.fc1, precision, act="gelu")
        self.fc2 = _linear(block.mlp.fc2, precision)
        self.heads = NUM_HEADS

    def forward(self, x: torch.Tensor, batch: int, tokens: int) -> torch.Tensor:
        c = x.shape[1]
        h = F.layer_norm(x, (c,), *self.ln1, eps=1e-6)
        qkv = self.qkv(h).reshape(batch, tokens, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        a = F.scaled_dot_product_attention(q, k, v)
        a = a.transpose(1, 2).reshape(batch * tokens, c)
        x = x + self.proj(a).float()
        h = F.layer_norm(x, (c,), *self.ln2, eps=1e-6)
        return x + self.fc2(self.fc1(h)).float()


def _layer_norm(norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """A LayerNorm's affine weight and bias, detached fp32."""
    weight = _present(norm.weight, "LayerNorm weight").detach().float()
    return weight, _present(norm.bias, "LayerNorm bias").detach().float()


def _linear(lin: nn.Linear, precision: str, act: str = "none") -> _Linear:
    """`_Linear` from an nn.Linear of the model."""
    return _Linear(lin.weight, _present(lin.bias, "Linear bias"), precision, act)


def _mlp(mlp: nn.Sequential) -> list[_Linear]:
    """An fp32 `_Linear` per Linear of one of the model's MLPs, each but the last with its ReLU fused."""
    found = linears(mlp)
    return [_linear(lin, "fp32", act="relu" if i < len(found) - 1 else "none") for i, lin in enumerate(found)]


class FoldedAstroMAE(nn.Module):
    """AstroMAE rebuilt from a model's weights for fast inference (same function, fewer passes)."""

    def __init__(self, model: AstroMAE, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise EngineError(f"precision {precision!r} unknown; choose one of {', '.join(PRECISIONS)}")
        self.precision = precision
        with torch.no_grad():
            proj = model.patch_embed.proj
            self.grid = IMAGE_SIZE // PATCH_SIZE
            # Conv 8x8/8 == matmul over flattened patches; position embedding folds into the bias.
            patch_w = proj.weight.reshape(EMBED_DIM, -1)
            self.patch = _Linear(patch_w, torch.zeros(EMBED_DIM), "fp32")
            patch_bias = _present(proj.bias, "patch embedding bias")
            self.token_bias = (patch_bias[None, :] + model.pos_embed[0, 1:, :]).detach().float()
            self.cls_row = (model.cls_token[0, 0] + model.pos_embed[0, 0]).detach().float()
            self.blocks = nn.ModuleList(_Block(b, precision) for b in layers(model.blocks, Block))
            self.fc_norm = _layer_norm(model.fc_norm)
            self.head = _linear(model.head, "fp32")
            self.vit1, self.vit2 = _mlp(model.vit_block)

            branch = model.inception_model
            init = branch.conv2d_init
            init_bias = _present(init.bias, "first conv bias")
            self.init = _Conv(init.weight.detach().float(), init_bias.detach().float(), 0, False)
            self.inception = nn.ModuleList(_Inception(b) for b in branch.inception_blocks)
            lin = branch.fc1
            channels = branch.flat_channels
            side = int(round((lin.in_features // channels) ** 0.5))
            # Channels-last flatten order is (h, w, c); permute the Linear's columns to match.
            w_nhwc = lin.weight.reshape(lin.out_features, channels, side, side).permute(0, 2, 3, 1)
            lin_bias = _present(lin.bias, "Linear bias")
            self.cnn1 = _Linear(w_nhwc.reshape(lin.out_features, -1), lin_bias, "fp32", act="relu")
            self.cnn2 = _linear(branch.fc2, "fp32")

            self.mag = nn.ModuleList(_mlp(model.magnitude_block))
            self.cat1, self.cat2 = _mlp(model.concat_block)

    def vit(self, images: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        g, p = self.grid, PATCH_SIZE
        patches = images.reshape(b, IMAGE_BANDS, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b * g * g, -1)
        tok = self.patch(patches).reshape(b, g * g, EMBED_DIM) + self.token_bias
        x = torch.cat((self.cls_row.expand(b, 1, EMBED_DIM), tok), dim=1)
        t = g * g + 1
        x = x.reshape(b * t, EMBED_DIM)
        for block in self.blocks:
            x = block(x, b, t)
        pooled = x.reshape(b, t, EMBED_DIM)[:, 1:, :].mean(dim=1)
        h = self.head(F.layer_norm(pooled, (EMBED_DIM,), *self.fc_norm, eps=1e-6))
        return self.vit2(self.vit1(h))

    def cnn(self, images: torch.Tensor) -> torch.Tensor:
        x = images.contiguous(memory_format=torch.channels_last)
        # conv1x1 and avg-pool are both linear, so pooling first is the same map at 1/4 the cost.
        x = self.init(F.avg_pool2d(x, 2))
        inc = self.inception
        x = inc[1](inc[0](x))
        x = F.avg_pool2d(x, 2)
        x = inc[3](inc[2](x))
        x = F.avg_pool2d(x, 2)
        x = inc[4](x)
        flat = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.cnn2(self.cnn1(flat))

    def forward(self, images: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
        m = magnitudes
        for mag_layer in self.mag:
            m = mag_layer(m)
        feats = torch.cat((self.vit(images), self.cnn(images), m), dim=1)
        return self.cat2(self.cat1(feats))


class TorchRunner:
    """Runs one batch through `FoldedAstroMAE` in micro-batches (the torch backend of `Engine`)."""

    backend = "torch"

    def __init__(self, model: AstroMAE, precision: str, threads: int, micro_batch: int) -> None:
        if not isinstance(model, AstroMAE):
            raise EngineError(f"the torch backend needs an AstroMAE model, got {type(model).__name__}")
        self.precision = precision
        self.threads = threads
        self.micro_batch = micro_batch
        torch.set_num_threads(threads)
        self.folded = FoldedAstroMAE(model.eval(), precision).eval()

    def start(self) -> None:
        """Called before each `predict`: torch's thread count is process-wide."""
        torch.set_num_threads(self.threads)

    def run(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        """Redshifts (n,) float32 for one batch of contiguous float32 arrays."""
        with torch.inference_mode():
            x, m = torch.from_numpy(images), torch.from_numpy(magnitudes)
            outs = [
                self.folded(x[s : s + self.micro_batch], m[s : s + self.micro_batch])
                for s in range(0, x.shape[0], self.micro_batch)
            ]
            return torch.cat(outs)[:, 0].numpy()


def plain_eager_predict(
    model: AstroMAE, images: np.ndarray, magnitudes: np.ndarray, batch_size: int = 512
) -> np.ndarray:
    """The baseline: the unmodified model, eager, in `inference_mode`, batch by batch."""
    model = model.eval()
    outs = []
    with torch.inference_mode():
        for s in range(0, images.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size], dtype=np.float32))
            m = torch.from_numpy(np.ascontiguousarray(magnitudes[s : s + batch_size], dtype=np.float32))
            outs.append(model(x, m)[:, 0].numpy())
    return np.concatenate(outs) if outs else np.empty(0, np.float32)


__all__ = ["FoldedAstroMAE", "TorchRunner", "int8_weight_max", "plain_eager_predict"]
