"""BERT-style sentence encoder exported from PyTorch with the legacy exporter (as most hub models were).

Inputs ``input_ids`` [N, T] int64 and ``attention_mask`` [N, T] int64 (1 = token, 0 = padding), both with
dynamic batch and sequence axes. Token + position embeddings, LayerNorm, two encoder blocks (Q/K/V/output
MatMuls, scaled-dot-product attention with an additive padding mask, Softmax, GELU (Erf) feed-forward),
masked mean pooling -> ``sentence_embedding`` [N, D]. The padding mask is built inside the graph in one of
the two forms exporters write:

- ``mask="ninf"``:  ``Where(mask, 0, -inf)`` (``masked_fill(-inf)`` style): the scores of padded tokens are -inf
- ``mask="finfo"``: ``(1 - mask) * finfo(float32).min`` (Hugging Face's ``get_extended_attention_mask``)
- ``mask="neg1e4"``: ``(1 - mask) * -10000.0`` (the same in older Hugging Face versions, which many exported
  models on the hubs still carry): a finite mask constant only the graph tells from data

At opset 17 LayerNorm is one LayerNormalization node; at opset 13 it is decomposed (ReduceMean, Pow, Sqrt...).
"""

from __future__ import annotations

import math

import numpy as np

from . import ZooBuild
from .common import rng, torch_export

VOCAB, D, HEADS, FFN, LAYERS, MAX_T = 200, 32, 2, 64, 2, 32
SEQ = 16


def _module(mask: str):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.ff1, self.ff2 = nn.Linear(D, FFN), nn.Linear(FFN, D)
            self.act = nn.GELU()

        def forward(self, x, bias):
            n, t, _ = x.shape
            dh = D // HEADS

            def heads(z):
                return z.view(n, t, HEADS, dh).transpose(1, 2)

            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh) + bias
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(n, t, D)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.ff2(self.act(self.ff1(x))))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, D)
            self.pos = nn.Embedding(MAX_T, D)
            self.ln = nn.LayerNorm(D)
            self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))

        def forward(self, input_ids, attention_mask):
            t = input_ids.shape[1]
            pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
            x = self.ln(self.tok(input_ids) + self.pos(pos))
            m = attention_mask[:, None, None, :]
            if mask == "ninf":
                bias = torch.where(m.bool(), torch.tensor(0.0), torch.tensor(float("-inf")))
            else:
                c = -10000.0 if mask == "neg1e4" else torch.finfo(torch.float32).min
                bias = (1.0 - m.to(torch.float32)) * c
            for b in self.blocks:
                x = b(x, bias)
            w = attention_mask.unsqueeze(-1).to(torch.float32)
            return (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)

    return Encoder()


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    r = rng(seed)
    ids = r.integers(1, VOCAB, size=(n, SEQ)).astype(np.int64)
    lengths = r.integers(4, SEQ + 1, size=n)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = 0  # [PAD]
    return {"input_ids": ids, "attention_mask": mask}


def build(opset: int, mask: str = "ninf") -> ZooBuild:
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    m = _module(mask)
    with torch.no_grad():  # larger embeddings than nn.Embedding's N(0,1) defaults would give after LayerNorm
        for p in m.parameters():
            if p.ndim == 2:
                p.mul_(1.5)
    ex = _data(2, 99)
    model = torch_export(m, (torch.from_numpy(ex["input_ids"]), torch.from_numpy(ex["attention_mask"])), opset,
                         ["input_ids", "attention_mask"], ["sentence_embedding"],
                         {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "sentence_embedding": {0: "batch"}})
    return ZooBuild(model, _data(32, 1), _data(48, 2))
