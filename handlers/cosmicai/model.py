"""The AstroMAE redshift model (reference class `ViT_Astro`) in plain PyTorch.

Parameter and buffer names follow the reference state dict wherever the module
tree allows, so checkpoint conversion is (almost) an identity map; see
`cosmicai.weights` for the explicit name map.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IMAGE_BANDS = 5
IMAGE_SIZE = 32
PATCH_SIZE = 8
EMBED_DIM = 192
DEPTH = 12
NUM_HEADS = 3
MLP_RATIO = 4
BRANCH_DIM = 1096
MAGNITUDE_DIM = 1024

_M = TypeVar("_M", bound=nn.Module)


def sincos_pos_embed(embed_dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    """Fixed 2-D sin-cos position embedding of MAE, shape (1 + grid**2, dim)."""
    grid_h = np.arange(grid_size, dtype=np.float64)
    grid_w = np.arange(grid_size, dtype=np.float64)
    mesh = np.meshgrid(grid_w, grid_h)  # w first, as MAE does
    grid = np.stack(mesh, axis=0).reshape(2, 1, grid_size, grid_size)

    def one_axis(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    emb = np.concatenate([one_axis(embed_dim // 2, grid[0]), one_axis(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


class PatchEmbed(nn.Module):
    """Non-overlapping 8x8 patches projected to the embedding width."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(IMAGE_BANDS, EMBED_DIM, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention using PyTorch's fused scaled-dot-product kernel."""

    def __init__(self, dim: int = EMBED_DIM, num_heads: int = NUM_HEADS) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Transformer feed-forward block: fc1 -> GELU -> fc2."""

    def __init__(self, dim: int = EMBED_DIM, hidden: int = EMBED_DIM * MLP_RATIO) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm 0.4.12 layout, no layer scale)."""

    def __init__(self, dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvBlock(nn.Module):
    """Conv2d -> BatchNorm2d -> ReLU (reference `blocks.photoz.ConvBlock`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=padding)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class InceptionBlock(nn.Module):
    """Four parallel branches (1x1, 3x3, 5x5, pool) concatenated on channels.

    `use_5x5=False` reproduces the reference's custom last block, which keeps the
    5x5 branch's parameters but skips it in forward.
    """

    def __init__(self, in_ch: int, width: int, use_5x5: bool = True) -> None:
        super().__init__()
        self.use_5x5 = use_5x5
        self.branch1 = ConvBlock(in_ch, width, 1)
        self.branch2 = nn.Sequential(ConvBlock(in_ch, width, 1), ConvBlock(width, width, 3, 1))
        self.branch3 = nn.Sequential(ConvBlock(in_ch, width, 1), ConvBlock(width, width, 5, 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBlock(in_ch, width, 1))

    # Named views of the branches' layers (the reference's Sequentials fix their positions, and
    # its state-dict names carry them: `branch2.0`, `branch2.1`, ...).
    @property
    def reduce3(self) -> ConvBlock:
        """The 1x1 conv before the 3x3 (branch2[0])."""
        return layer(self.branch2, 0, ConvBlock)

    @property
    def conv3(self) -> ConvBlock:
        """The 3x3 conv (branch2[1])."""
        return layer(self.branch2, 1, ConvBlock)

    @property
    def reduce5(self) -> ConvBlock:
        """The 1x1 conv before the 5x5 (branch3[0])."""
        return layer(self.branch3, 0, ConvBlock)

    @property
    def conv5(self) -> ConvBlock:
        """The 5x5 conv (branch3[1]; unused when `use_5x5` is False)."""
        return layer(self.branch3, 1, ConvBlock)

    @property
    def pool_proj(self) -> ConvBlock:
        """The 1x1 conv after the 3x3 max-pool (branch4[1])."""
        return layer(self.branch4, 1, ConvBlock)

    @property
    def out_channels(self) -> int:
        """Channels of the concatenated output: `width` per branch that runs."""
        return self.branch1.conv.out_channels * (4 if self.use_5x5 else 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x)]
        if self.use_5x5:
            branches.append(self.branch3(x))
        branches.append(self.branch4(x))
        return torch.cat(branches, dim=1)


class InceptionBranch(nn.Module):
    """The CNN branch (reference `Input_Mix_Model`): 5x32x32 -> 1096 features.

    Its layers sit in one Sequential, `vis_inception`, as in the reference (whose state-dict names
    carry their positions); the positions are named here, once, and read through the accessors
    below (`inception_blocks`, `trunk`, `head_layers`, `fc1`, `fc2`), as timm's models name
    their parts.
    """

    # vis_inception: 0 conv2d_init (again), 1 pool, 2-3 inception, 4 pool, 5-6 inception, 7 pool,
    # 8 custom inception, 9 flatten | 10 linear, 11 relu, 12 linear
    INCEPTION_AT = (2, 3, 5, 6, 8)
    TRUNK_END = 10  # vis_inception[:10] ends with Flatten; [10:] is the MLP head
    FC1_AT, FC2_AT = 10, 12

    def __init__(self) -> None:
        super().__init__()
        self.conv2d_init = nn.Conv2d(IMAGE_BANDS, 32, kernel_size=1)
        # The reference registers conv2d_init again as element 0, so its state
        # dict carries that conv under both names; we keep the same tree.
        self.vis_inception = nn.Sequential(
            self.conv2d_init,
            nn.AvgPool2d(2),
            InceptionBlock(32, 16),
            InceptionBlock(64, 16),
            nn.AvgPool2d(2),
            InceptionBlock(64, 8),
            InceptionBlock(32, 8),
            nn.AvgPool2d(2),
            InceptionBlock(32, 4, use_5x5=False),
            nn.Flatten(),
            nn.Linear(12 * 4 * 4, BRANCH_DIM),  # the last block's 3 x 4 channels, 4 x 4 pixels
            nn.ReLU(),
            nn.Linear(BRANCH_DIM, BRANCH_DIM),
        )

    @property
    def inception_blocks(self) -> list[InceptionBlock]:
        """The five Inception blocks, in order (pools between the 2nd/3rd and 4th/5th)."""
        return [layer(self.vis_inception, i, InceptionBlock) for i in self.INCEPTION_AT]

    @property
    def trunk(self) -> nn.Sequential:
        """Convolutions and pools up to the Flatten: images -> (N, flat_features)."""
        return nn.Sequential(*list(self.vis_inception)[: self.TRUNK_END])

    @property
    def head_layers(self) -> nn.Sequential:
        """The MLP after the Flatten: (N, flat_features) -> (N, BRANCH_DIM)."""
        return nn.Sequential(*list(self.vis_inception)[self.TRUNK_END :])

    @property
    def fc1(self) -> nn.Linear:
        """The first Linear of the head; its inputs are the flattened (C, H, W) of the last block."""
        return layer(self.vis_inception, self.FC1_AT, nn.Linear)

    @property
    def fc2(self) -> nn.Linear:
        """The last Linear of the head."""
        return layer(self.vis_inception, self.FC2_AT, nn.Linear)

    @property
    def flat_channels(self) -> int:
        """Channels of the last Inception block's output, flattened into `fc1`'s inputs."""
        return self.inception_blocks[-1].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vis_inception(x)


def linears(mlp: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of an MLP built by `_mlp` (`vit_block`, `magnitude_block`,
    `concat_block`), in order; a ReLU follows each but the last."""
    return [m for m in mlp if isinstance(m, nn.Linear)]


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AstroMAE(nn.Module):
    """ViT encoder + Inception CNN + magnitude MLP fused into one redshift output."""

    def __init__(self) -> None:
        super().__init__()
        num_patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        pos = torch.from_numpy(sincos_pos_embed(EMBED_DIM, IMAGE_SIZE // PATCH_SIZE)).float()
        self.pos_embed = nn.Parameter(pos.unsqueeze(0), requires_grad=False)
        assert self.pos_embed.shape[1] == num_patches + 1
        self.blocks = nn.ModuleList([Block() for _ in range(DEPTH)])
        self.fc_norm = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.head = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.vit_block = _mlp([EMBED_DIM, BRANCH_DIM, BRANCH_DIM])
        self.inception_model = InceptionBranch()
        self.magnitude_block = _mlp([IMAGE_BANDS] + [MAGNITUDE_DIM] * 5)
        self.concat_block = _mlp([2 * BRANCH_DIM + MAGNITUDE_DIM, 1024, 1])
        nn.init.normal_(self.cls_token, std=0.02)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """ViT features: mean of the patch tokens after the 12 blocks."""
        x = self.patch_embed(images) + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.fc_norm(x[:, 1:, :].mean(dim=1)))

    def forward(self, images: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
        vit = self.vit_block(self.encode(images))
        cnn = self.inception_model(images)
        mags = self.magnitude_block(magnitudes.float())
        return self.concat_block(torch.cat((vit, cnn, mags), dim=1))


def layer(container: nn.Sequential | nn.ModuleList, index: int, kind: type[_M]) -> _M:
    """`container[index]`, checked to be a `kind`.

    The accessors above reach into the model's Sequentials by position (named once, here): a
    position that no longer holds the layer they expect fails by name, instead of deep inside
    a matmul (and the result is typed for mypy).
    """
    found = container[index]
    if not isinstance(found, kind):
        raise TypeError(f"layer {index} is a {type(found).__name__}, not a {kind.__name__}")
    return found


def layers(container: nn.Sequential | nn.ModuleList, kind: type[_M]) -> list[_M]:
    """Every layer of `container`, each checked to be a `kind` (as `layer`)."""
    return [layer(container, i, kind) for i in range(len(container))]


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (shared modules counted once), trainable or not."""
    return sum(p.numel() for p in model.parameters())
