"""A small FPN/CenterNet-style detector exported from PyTorch (legacy exporter).

Inputs ``image`` [N, 3, 32, 32] in 0..255 (unnormalised, as many detection exports take it) and
``image_size`` [N, 2] float (the original height and width, in the hundreds). Backbone of strided convs;
top-down path with ``Resize`` (nearest x2 upsampling) and a ``ConvTranspose``; a ``Concat`` whose inputs have
very different ranges (0..255 raw pixels downsampled, unit-range features, and a coordinate grid scaled by
``image_size`` into the hundreds); three outputs: ``heatmap`` [N, 4, 16, 16] (sigmoid), ``boxes`` [N, 256, 4]
(pixels) and ``scores`` [N, 256] (max class score).
"""

from __future__ import annotations

import numpy as np

from . import ZooBuild
from .common import rng, torch_export

CLASSES = 4


def _module():
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415, N812
    from torch import nn  # noqa: PLC0415

    class Det(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)  # 16x16
            self.c2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)  # 8x8
            self.c3 = nn.Conv2d(32, 32, 3, stride=2, padding=1)  # 4x4
            self.up = nn.ConvTranspose2d(32, 32, 2, stride=2)  # 4x4 -> 8x8
            self.lat = nn.Conv2d(16, 32, 1)
            self.fuse = nn.Conv2d(32 + 3 + 2, 32, 3, padding=1)
            self.hm = nn.Conv2d(32, CLASSES, 1)
            self.box = nn.Conv2d(32, 4, 1)

        def forward(self, image, image_size):
            f1 = torch.relu(self.c1(image / 255.0 - 0.5))
            f2 = torch.relu(self.c2(f1))
            f3 = torch.relu(self.c3(f2))
            p2 = f2 + self.up(f3)  # ConvTranspose
            p1 = self.lat(f1) + F.interpolate(p2, scale_factor=2.0, mode="nearest")  # Resize
            n, _, h, w = p1.shape
            raw = F.avg_pool2d(image, 2)  # 0..255, next to unit-range features
            ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(n, 1, h, w) / h
            xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(n, 1, h, w) / w
            grid = torch.cat([ys, xs], 1) * image_size.view(n, 2, 1, 1)  # pixel coordinates, in the hundreds
            x = torch.relu(self.fuse(torch.cat([p1, raw, grid], 1)))
            heat = torch.sigmoid(self.hm(x))
            d = torch.exp(self.box(x).clamp(max=4.0)) * 4.0  # box extents in pixels
            centre = grid.repeat(1, 2, 1, 1)
            boxes = (centre + d * torch.tensor([-1.0, -1.0, 1.0, 1.0]).view(1, 4, 1, 1)).flatten(2).transpose(1, 2)
            scores = heat.flatten(2).max(dim=1).values
            return heat, boxes, scores

    return Det()


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    r = rng(seed)
    img = r.uniform(0, 60, (n, 3, 32, 32))
    for i in range(n):  # a few bright rectangles: the "objects"
        for _ in range(r.integers(1, 4)):
            y, x = r.integers(0, 26, 2)
            hh, ww = r.integers(3, 8, 2)
            img[i, :, y:y + hh, x:x + ww] = r.uniform(150, 255, (3, 1, 1))
    size = r.choice([240.0, 320.0, 480.0, 640.0], size=(n, 2))
    return {"image": img.astype(np.float32), "image_size": size.astype(np.float32)}


def build(opset: int) -> ZooBuild:
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    ex = _data(2, 99)
    m = torch_export(_module(), (torch.from_numpy(ex["image"]), torch.from_numpy(ex["image_size"])), opset,
                     ["image", "image_size"], ["heatmap", "boxes", "scores"],
                     {"image": {0: "batch"}, "image_size": {0: "batch"}, "heatmap": {0: "batch"},
                      "boxes": {0: "batch"}, "scores": {0: "batch"}})
    return ZooBuild(m, _data(32, 1), _data(48, 2))
