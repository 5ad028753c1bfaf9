"""Test-only: the reference fine-tune model, fed the pieces of an MAE-pretrained ViT."""

from functools import partial

import torch
from torch import nn

from blocks.photoz import Input_Mix_Model


class ViT_Astro(nn.Module):  # noqa: N801 (the reference's class name)
    def __init__(self, embed_dim, vit_layers):
        super().__init__()
        self.embed_dim = embed_dim
        self.fc_norm = partial(nn.LayerNorm, eps=1e-6)(embed_dim)
        self.head = nn.Linear(embed_dim, embed_dim)
        self.inception_model = Input_Mix_Model(5, 32, embed_dim)
        self.cls_token = vit_layers["cls_token"]
        self.pos_embed = vit_layers["pos_embed"]
        self.blocks = vit_layers["blocks"]
        self.patch_embed = vit_layers["patch_embed"]
        self.vit_block = nn.Sequential(nn.Linear(embed_dim, 1096), nn.ReLU(), nn.Linear(1096, 1096))
        self.concat_block = nn.Sequential(nn.Linear(3216, 1024), nn.ReLU(), nn.Linear(1024, 1))

    def forward(self, x):
        images = x[0]
        tokens = self.patch_embed(images)
        tokens = torch.cat((self.cls_token.expand(images.shape[0], -1, -1), tokens), dim=1) + self.pos_embed
        for blk in self.blocks:
            tokens = blk(tokens)
        vit = self.vit_block(self.head(self.fc_norm(tokens[:, 1:, :].mean(dim=1))))
        return self.concat_block(torch.cat((vit, self.inception_model(x)), 1))
