"""Test-only: the reference's Inception CNN branch with its magnitude MLP inside."""

import torch
from torch import nn
from torch.nn import functional as F


class ConvBlock(nn.Module):
    def __init__(self, in_channels, out_channels, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class InceptionBlock(nn.Module):
    def __init__(self, in_channels, width, is_custom=False):
        super().__init__()
        self.is_custom = is_custom
        self.branch1 = ConvBlock(in_channels, width, kernel_size=1)
        self.branch2 = nn.Sequential(
            ConvBlock(in_channels, width, kernel_size=1), ConvBlock(width, width, kernel_size=3, padding=1)
        )
        self.branch3 = nn.Sequential(
            ConvBlock(in_channels, width, kernel_size=1), ConvBlock(width, width, kernel_size=5, padding=2)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1), ConvBlock(in_channels, width, kernel_size=1)
        )

    def forward(self, x):
        used = [self.branch1, self.branch2] + ([] if self.is_custom else [self.branch3]) + [self.branch4]
        return torch.cat([b(x) for b in used], 1)


class Input_Mix_Model(nn.Module):  # noqa: N801 (the reference's class name)
    def __init__(self, in_channel=5, out_channel=32, embed_dim=192):
        super().__init__()
        self.device = "cpu"
        self.conv2d_init = nn.Conv2d(in_channel, out_channel, kernel_size=(1, 1))
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        mags = [nn.Linear(5, 1024)]
        for _ in range(4):
            mags += [nn.ReLU(), nn.Linear(1024, 1024)]
        self.magnitude_block = nn.Sequential(*mags)
        self.vis_inception = nn.Sequential(
            self.conv2d_init,
            self.avgpool,
            InceptionBlock(32, 16),
            InceptionBlock(64, 16),
            nn.AvgPool2d(kernel_size=2),
            InceptionBlock(64, 8),
            InceptionBlock(32, 8),
            nn.AvgPool2d(kernel_size=2),
            InceptionBlock(32, 4, is_custom=True),
            nn.Flatten(),
            nn.Linear(embed_dim, 1096),
            nn.ReLU(),
            nn.Linear(1096, 1096),
        )

    def forward(self, x):
        images, magnitudes = x
        return torch.cat((self.vis_inception(images), self.magnitude_block(magnitudes.float())), 1)
