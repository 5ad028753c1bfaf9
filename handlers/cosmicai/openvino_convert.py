"""AstroMAE -> OpenVINO IR in three parts, each compiled later with its own precision.

Run once per weights file (`cosmicai convert-checkpoint ... --openvino`, or the inference
image build), never at a worker's start-up: this module imports torch and traces the
model, which takes seconds. The parts are small torch modules that reach into the model
by its named submodules (`cosmicai.model.AstroMAE`), never by position in a graph:

- `embed`: `patch_embed` + `cls_token` + `pos_embed` -> tokens (B, 17, 192); always f32.
- `blocks`: the 12 transformer `blocks` -> tokens; the only part that runs in bf16 or int8.
- `rest`: `fc_norm`, `head`, `vit_block` on the mean patch token, `inception_model`,
  `magnitude_block`, `concat_block` -> z (B, 1); always f32 (the sensitive parts).
- `blocks_int8` (optional): `blocks` with their four Linear layers (`attn.qkv`, `attn.proj`,
  `mlp.fc1`, `mlp.fc2`) fake-quantized, per-channel symmetric int8 weights and per-tensor
  activation scales calibrated on a validation set; OpenVINO's low-precision transformations
  run them as int8 matmuls.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from cosmicai.model import EMBED_DIM, IMAGE_BANDS, IMAGE_SIZE, PATCH_SIZE, AstroMAE

TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2 + 1
# Names of the Linear layers inside each block that int8 quantizes (attribute paths).
BLOCK_LINEARS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


class EmbedPart(nn.Module):
    """images -> tokens: patch embedding, position embedding, class token (f32)."""

    def __init__(self, model: AstroMAE) -> None:
        super().__init__()
        self.patch_embed = model.patch_embed
        self.cls_token = model.cls_token
        self.pos_embed = model.pos_embed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images) + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        return torch.cat((cls, x), dim=1)


class BlocksPart(nn.Module):
    """tokens -> tokens through the transformer blocks (the part whose precision varies)."""

    def __init__(self, blocks: nn.ModuleList) -> None:
        super().__init__()
        self.blocks = blocks

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return tokens


class RestPart(nn.Module):
    """tokens, images, magnitudes -> z: ViT head, CNN branch, magnitude MLP, fusion (f32)."""

    def __init__(self, model: AstroMAE) -> None:
        super().__init__()
        self.fc_norm = model.fc_norm
        self.head = model.head
        self.vit_block = model.vit_block
        self.inception_model = model.inception_model
        self.magnitude_block = model.magnitude_block
        self.concat_block = model.concat_block

    def forward(self, tokens: torch.Tensor, images: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
        vit = self.vit_block(self.head(self.fc_norm(tokens[:, 1:, :].mean(dim=1))))
        cnn = self.inception_model(images)
        mags = self.magnitude_block(magnitudes)
        return self.concat_block(torch.cat((vit, cnn, mags), dim=1))


class FakeQuantLinear(nn.Module):
    """A Linear whose weights (per output channel) and input (per tensor) pass through int8 fake quantization."""

    # buffers (registered below), declared so their type is Tensor rather than Module.__getattr__'s union
    w_scale: torch.Tensor
    w_zero: torch.Tensor

    def __init__(self, linear: nn.Linear, input_absmax: float) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = nn.Parameter(linear.bias.detach().float(), requires_grad=False)
        self.register_buffer("w_scale", (w.abs().amax(dim=1).clamp_min(1e-12) / 127.0).float())
        self.register_buffer("w_zero", torch.zeros(w.shape[0], dtype=torch.int32))
        self.x_scale = max(float(input_absmax), 1e-12) / 127.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = torch.fake_quantize_per_tensor_affine(x, self.x_scale, 0, -128, 127)
        wq = torch.fake_quantize_per_channel_affine(self.weight, self.w_scale, self.w_zero, 0, -128, 127)
        return nn.functional.linear(xq, wq, self.bias)


def _get(module: nn.Module, path: str) -> nn.Module:
    for name in path.split("."):
        module = getattr(module, name)
    return module


def _set(module: nn.Module, path: str, value: nn.Module) -> None:
    *parents, last = path.split(".")
    for name in parents:
        module = getattr(module, name)
    setattr(module, last, value)


def calibrate_block_inputs(
    model: AstroMAE, images: np.ndarray, magnitudes: np.ndarray, batch: int = 128
) -> dict[str, float]:
    """Max |input| of each block Linear (`blocks.<i>.<attn.qkv|...>`) over a calibration set, fp32."""
    seen: dict[str, float] = {}
    hooks = []
    for i, block in enumerate(model.blocks):
        for path in BLOCK_LINEARS:
            key = f"blocks.{i}.{path}"

            def hook(_m: nn.Module, args: tuple[torch.Tensor, ...], key: str = key) -> None:
                seen[key] = max(seen.get(key, 0.0), float(args[0].abs().max()))

            hooks.append(_get(block, path).register_forward_pre_hook(hook))
    try:
        with torch.inference_mode():
            for s in range(0, images.shape[0], batch):
                model(
                    torch.from_numpy(np.ascontiguousarray(images[s : s + batch], np.float32)),
                    torch.from_numpy(np.ascontiguousarray(magnitudes[s : s + batch], np.float32)),
                )
    finally:
        for h in hooks:
            h.remove()
    return seen


def int8_blocks(model: AstroMAE, input_absmax: dict[str, float]) -> nn.ModuleList:
    """A copy of `model.blocks` with each block's Linear layers replaced by `FakeQuantLinear`."""
    blocks = copy.deepcopy(model.blocks)
    for i, block in enumerate(blocks):
        for path in BLOCK_LINEARS:
            linear = _get(block, path)
            if not isinstance(linear, nn.Linear):
                raise TypeError(f"blocks.{i}.{path} is a {type(linear).__name__}, not a Linear")
            _set(block, path, FakeQuantLinear(linear, input_absmax[f"blocks.{i}.{path}"]))
    return blocks


def convert(
    model: AstroMAE,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """({part: ov.Model}, facts): the three parts, plus `blocks_int8` when a calibration set is given."""
    import openvino as ov

    model = model.eval()
    batch = ov.Dimension(-1)
    img_shape = ov.PartialShape([batch, IMAGE_BANDS, IMAGE_SIZE, IMAGE_SIZE])
    tok_shape = ov.PartialShape([batch, TOKENS, EMBED_DIM])
    mag_shape = ov.PartialShape([batch, IMAGE_BANDS])
    ex_img = torch.zeros(2, IMAGE_BANDS, IMAGE_SIZE, IMAGE_SIZE)
    ex_tok = torch.zeros(2, TOKENS, EMBED_DIM)
    ex_mag = torch.full((2, IMAGE_BANDS), 18.0)
    specs: dict[str, tuple[nn.Module, tuple[torch.Tensor, ...], list[Any]]] = {
        "embed": (EmbedPart(model), (ex_img,), [img_shape]),
        "blocks": (BlocksPart(model.blocks), (ex_tok,), [tok_shape]),
        "rest": (RestPart(model), (ex_tok, ex_img, ex_mag), [tok_shape, img_shape, mag_shape]),
    }
    facts: dict[str, Any] = {}
    if calibration is not None:
        absmax = calibrate_block_inputs(model, *calibration)
        specs["blocks_int8"] = (BlocksPart(int8_blocks(model, absmax)), (ex_tok,), [tok_shape])
        facts["int8_calibration_objects"] = int(calibration[0].shape[0])
    parts: dict[str, Any] = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        for name, (module, example, shapes) in specs.items():
            # Traced here without torch's trace check, which imports torch.distributed and through it
            # sympy (left out of the inference image); the parts' outputs are compared with the
            # eager model by the qualification instead.
            traced = torch.jit.trace(module.eval(), example, check_trace=False)
            ovm = ov.convert_model(traced, example_input=example, input=shapes)
            ovm.set_friendly_name(f"astromae_{name}")
            parts[name] = ovm
    facts["convert_s"] = round(time.perf_counter() - t0, 3)
    return parts, facts


def lossless_fp16(model: AstroMAE) -> bool:
    """Whether every floating tensor of the model is exactly representable in fp16 (weights stored fp16)."""
    for t in model.state_dict().values():
        if t.is_floating_point() and not torch.equal(t.half().float(), t.float()):
            return False
    return True


__all__ = [
    "BLOCK_LINEARS",
    "BlocksPart",
    "EmbedPart",
    "FakeQuantLinear",
    "RestPart",
    "calibrate_block_inputs",
    "convert",
    "int8_blocks",
    "lossless_fp16",
]
