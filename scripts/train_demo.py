"""Train the bundled demo model and write it, with its calibration and evaluation splits, to resources/demo/.

The demo is a small CNN trained on scikit-learn's bundled handwritten digits (1,797 real 8x8 scans from
the UCI repository, shipped inside scikit-learn, so nothing is downloaded). Everything is seeded; run

    python scripts/train_demo.py

to reproduce the committed files (needs the dev and torch extras: scikit-learn, torch, onnxscript).
Outputs:
    resources/demo/digits_cnn.onnx   FP32 model, input "image" [N,1,8,8] float32 in [0,1], output "logits" [N,10]
    resources/demo/calib.npz         200 samples for calibration ("image", "labels")
    resources/demo/eval.npz          500 held-out samples for evaluation ("image", "labels")
    resources/demo/demo.json         split sizes, seed, and the FP32 accuracy measured here
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SEED = 20261125
OUT = Path(__file__).resolve().parent.parent / "resources" / "demo"
N_CALIB, N_EVAL = 200, 500
EPOCHS = 120


def build_model():
    import torch
    from torch import nn

    class DigitsNet(nn.Module):
        """Stem, a residual block, a strided conv, a two-branch Concat, pooling and two dense layers.

        Small, but with the structures quantization debugging cares about: Conv, residual Add, Concat,
        MaxPool, GlobalAveragePool and Gemm.
        """

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 16, 3, padding=1)
            self.block_a = nn.Conv2d(16, 16, 3, padding=1)
            self.block_b = nn.Conv2d(16, 16, 3, padding=1)
            self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1)
            self.branch_1x1 = nn.Conv2d(32, 16, 1)
            self.branch_3x3 = nn.Conv2d(32, 16, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc1 = nn.Linear(32, 64)
            self.fc2 = nn.Linear(64, 10)

        def forward(self, image):
            x = torch.relu(self.stem(image))
            y = torch.relu(self.block_a(x))
            x = torch.relu(x + self.block_b(y))
            x = torch.relu(self.down(x))
            x = torch.relu(torch.cat([self.branch_1x1(x), self.branch_3x3(x)], dim=1))
            x = self.pool(x)
            x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return self.fc2(torch.relu(self.fc1(x)))

    return DigitsNet()


def tidy_names(model) -> None:
    """Name nodes after the module that made them (``stem.Conv``) and drop exporter metadata.

    The exporter's metadata holds stack traces with this machine's paths; the names it picks
    (``node_conv2d_3``) say less to a user than the module names do.
    """
    import ast

    seen: set[str] = set()
    for node in model.graph.node:
        props = {p.key: p.value for p in node.metadata_props}
        scopes = ast.literal_eval(props.get("pkg.torch.onnx.name_scopes", "[]"))
        if len(scopes) > 2:
            name = f"{scopes[1]}.{node.op_type}"
        elif len(scopes) == 2:
            name = scopes[1]
        else:
            name = node.name
        base, k = name, 1
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        node.name = name
        del node.metadata_props[:]
    for vi in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        del vi.metadata_props[:]
    for init in model.graph.initializer:
        del init.metadata_props[:]
    del model.metadata_props[:]
    model.producer_name = "quant-workbench demo (scripts/train_demo.py)"
    model.doc_string = "DigitsNet trained on scikit-learn's handwritten digits; see resources/demo/demo.json"


def main() -> int:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_rest, x_eval, y_rest, y_eval = train_test_split(x, y, test_size=N_EVAL, random_state=SEED, stratify=y)
    x_train, x_calib, y_train, y_calib = train_test_split(x_rest, y_rest, test_size=N_CALIB, random_state=SEED,
                                                          stratify=y_rest)

    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            xb = xt[idx]
            # light augmentation: shift by up to one pixel, filling with background
            dx, dy = torch.randint(0, 3, (2,), generator=gen).tolist()
            xb = torch.nn.functional.pad(xb, (1, 1, 1, 1))[:, :, dy:dy + 8, dx:dx + 8]
            loss = torch.nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_eval)).argmax(1).numpy() == y_eval).mean())
    print(f"FP32 accuracy on the {N_EVAL}-sample evaluation split (PyTorch): {acc:.4f}")

    OUT.mkdir(parents=True, exist_ok=True)
    onnx_path = OUT / "digits_cnn.onnx"
    program = torch.onnx.export(model, (torch.from_numpy(x_calib[:1]),), dynamo=True, opset_version=18,
                                input_names=["image"], output_names=["logits"],
                                dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=4096)}},
                                optimize=True, verbose=False)
    import onnx

    proto = program.model_proto
    tidy_names(proto)
    onnx.save(proto, str(onnx_path))
    np.savez_compressed(OUT / "calib.npz", image=x_calib, labels=y_calib)
    np.savez_compressed(OUT / "eval.npz", image=x_eval, labels=y_eval)
    meta = {"dataset": "scikit-learn load_digits (UCI optical recognition of handwritten digits)",
            "seed": SEED, "train": len(x_train), "calib": N_CALIB, "eval": N_EVAL,
            "fp32_accuracy_torch": round(acc, 4), "script": "scripts/train_demo.py"}
    (OUT / "demo.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes), calib.npz, eval.npz, demo.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
