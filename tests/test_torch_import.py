"""The PyTorch import routes: factory, TorchScript file, saved torch.export program."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from workbench.errors import ModelLoadError  # noqa: E402
from workbench.model_prep import prepare_model  # noqa: E402


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, image):
        return self.fc(torch.relu(self.conv(image)).flatten(1))


def _reference(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _run(path, x):
    sess = ort.InferenceSession(str(path))
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture
def small():
    torch.manual_seed(0)
    return Small().eval()


def test_factory_route(tmp_path, monkeypatch, small):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "zoo.py").write_text(textwrap.dedent("""
        import torch
        from tests.test_torch_import import Small

        def make():
            torch.manual_seed(0)
            return Small().eval(), (torch.zeros(1, 1, 8, 8),)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = prepare_model("mypkg.zoo:make", trust_code=True)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(pm.path, x[:1]), _reference(small, x[:1]), rtol=1e-4, atol=1e-5)
    assert "Conv" in pm.graph.op_type_counts() and any("factory" in n or "exported" in n for n in pm.notes)
    sys.modules.pop("mypkg.zoo", None)


def test_torchscript_route_takes_shapes_from_data(tmp_path, small):
    path = tmp_path / "small.pt"
    torch.jit.save(torch.jit.script(small), str(path))
    x = np.random.default_rng(1).standard_normal((1, 1, 8, 8)).astype(np.float32)
    with pytest.raises(ModelLoadError, match="input shapes"):
        prepare_model(path, trust_code=True)
    pm = prepare_model(path, example_input={"image": x}, trust_code=True)
    np.testing.assert_allclose(_run(pm.path, x), _reference(small, x), rtol=1e-4, atol=1e-5)


def test_torch_export_program_route(tmp_path, small):
    x = torch.zeros(1, 1, 8, 8)
    program = torch.export.export(small, (x,))
    path = tmp_path / "small.pt2"
    torch.export.save(program, str(path))
    pm = prepare_model(path, trust_code=True)
    xn = np.random.default_rng(2).standard_normal((1, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(pm.path, xn), _reference(small, xn), rtol=1e-4, atol=1e-5)


def test_bad_factory_spec():
    with pytest.raises(ModelLoadError, match="Cannot import"):
        prepare_model("no_such_package.module:make", trust_code=True)
