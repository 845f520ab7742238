"""Models for benchmarks, built in code (no downloads): a MobileNetV2-style CNN exported to ONNX.

Weights are random (seeded) with BatchNorm statistics set from a forward pass over random data, so
activations have realistic scales; these models measure time and memory, not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"


def mobilenet_v2(width: float = 1.0, num_classes: int = 1000):
    import torch
    from torch import nn

    def c(v):
        return max(8, int(v * width + 4) // 8 * 8)

    class ConvBN(nn.Sequential):
        def __init__(self, i, o, k=3, s=1, g=1, act=True):
            layers = [nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o)]
            if act:
                layers.append(nn.ReLU6())
            super().__init__(*layers)

    class Inverted(nn.Module):
        def __init__(self, i, o, s, t):
            super().__init__()
            h = i * t
            self.res = s == 1 and i == o
            layers = ([ConvBN(i, h, 1)] if t != 1 else []) + [ConvBN(h, h, 3, s, g=h), ConvBN(h, o, 1, act=False)]
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.body(x) if self.res else self.body(x)

    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers = [ConvBN(3, c(32), 3, 2)]
    i = c(32)
    for t, ch, n, s in cfg:
        for k in range(n):
            layers.append(Inverted(i, c(ch), s if k == 0 else 1, t))
            i = c(ch)
    layers.append(ConvBN(i, 1280, 1))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(1280, num_classes)

        def forward(self, image):
            x = self.features(image)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return Net()


def mobilenet_onnx(size: int = 96, seed: int = 0) -> Path:
    """Export (once, cached) a MobileNetV2 for ``size`` x ``size`` RGB input with a dynamic batch axis."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"mobilenetv2_{size}.onnx"
    if path.exists():
        return path
    import torch

    torch.manual_seed(seed)
    model = mobilenet_v2()
    model.train()
    with torch.no_grad():  # settle BatchNorm running statistics on data of the right scale
        for _ in range(4):
            model(torch.randn(16, 3, size, size))
    model.eval()
    x = torch.randn(1, 3, size, size)
    prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, input_names=["image"],
                             output_names=["logits"], dynamic_shapes={"image": {0: torch.export.Dim("batch", max=4096)}},
                             optimize=True, verbose=False)
    prog.save(str(path))
    return path


def image_data(n: int, size: int = 96, seed: int = 0, path: Path | None = None) -> Path:
    """``n`` smooth random images (low-frequency noise, like natural images) as an .npz keyed 'image'."""
    CACHE.mkdir(exist_ok=True)
    path = path or CACHE / f"images_{size}_{n}_{seed}.npz"
    if not path.exists():
        rng = np.random.default_rng(seed)
        small = rng.standard_normal((n, 3, size // 8, size // 8)).astype(np.float32)
        x = small.repeat(8, axis=2).repeat(8, axis=3) + 0.3 * rng.standard_normal((n, 3, size, size)).astype(np.float32)
        np.savez(path, image=x.astype(np.float32), labels=rng.integers(0, 1000, n))
    return path
