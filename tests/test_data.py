"""Data sources and their validation against the model's inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.models import conv_net, save
from workbench.data import open_data
from workbench.errors import DataError
from workbench.model_prep import prepare_model
from workbench.recipe import PreprocessSpec


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return prepare_model(save(conv_net(), tmp_path_factory.mktemp("m") / "m.onnx")).graph.inputs


def test_npz_samples_and_batches(tmp_path, inputs):
    x = np.arange(5 * 3 * 8 * 8, dtype=np.float32).reshape(5, 3, 8, 8)
    np.savez(tmp_path / "d.npz", x=x, labels=np.arange(5))
    src = open_data(tmp_path / "d.npz", inputs)
    assert len(src) == 5 and src.can_batch
    np.testing.assert_array_equal(src.sample(2)["x"], x[2:3])
    assert [(a, b) for a, b, _ in src.batches(batch_size=2)] == [(0, 2), (2, 4), (4, 5)]
    assert list(src.labels) == [0, 1, 2, 3, 4]


def test_npy_for_single_input(tmp_path, inputs):
    np.save(tmp_path / "d.npy", np.zeros((3, 3, 8, 8), np.float32))
    assert len(open_data(tmp_path / "d.npy", inputs)) == 3


def test_fixed_batch_model_runs_one_sample_at_a_time(tmp_path):
    inputs = prepare_model(save(conv_net(dynamic_batch=False), tmp_path / "m.onnx")).graph.inputs
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3, 8, 8), np.float32))
    src = open_data(tmp_path / "d.npz", inputs)
    assert not src.can_batch
    assert [feed["x"].shape for _, _, feed in src.batches()] == [(1, 3, 8, 8)] * 4


def test_extra_batch_axis_on_a_fixed_batch_model_says_how_it_is_fed(tmp_path):
    """(N, 1, C, H, W) for a model whose batch is fixed at 1: the message must not read '(1, 3, 8, 8) but the
    model expects (1, 3, 8, 8)' - it says each sample is fed as a batch of one and what shape to save."""
    inputs = prepare_model(save(conv_net(dynamic_batch=False), tmp_path / "m.onnx")).graph.inputs
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 3, 8, 8), np.float32))
    with pytest.raises(DataError) as e:
        open_data(tmp_path / "d.npz", inputs)
    assert "fed as a batch of one, (1, 1, 3, 8, 8)" in str(e.value)
    assert e.value.fix == "put the sample axis first: shape (num_samples, 3, 8, 8)"


@pytest.mark.parametrize("arrays, fragment", [
    ({"image": np.zeros((2, 3, 8, 8), np.float32)}, "no array for model input(s) ['x']"),
    ({"x": np.zeros((2, 3, 8, 8), np.float32), "extra": np.zeros(2)}, "not model inputs"),
    ({"x": np.zeros((2, 3, 8, 8), np.float64)}, "is float64 but the model expects float32"),
    ({"x": np.zeros((2, 3, 9, 9), np.float32)}, "dimension 2: 9 vs 8"),
    ({"x": np.zeros((2, 8, 8), np.float32)}, "put the sample axis first"),
    ({"x": np.zeros((0, 3, 8, 8), np.float32)}, "holds no samples"),
    ({"x": np.zeros((2, 3, 8, 8), np.float32), "labels": np.zeros(3, np.int64)}, "one integer label per sample"),
    ({"x": np.zeros((2, 3, 8, 8), np.float32), "labels": np.zeros(2, np.float32)}, "integer class indices"),
])
def test_mismatched_npz_names_the_problem(tmp_path, inputs, arrays, fragment):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError) as e:
        open_data(p, inputs)
    assert fragment in str(e.value) and str(p) in str(e.value)


def test_unreadable_and_missing_files(tmp_path, inputs):
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="not a readable .npz"):
        open_data(tmp_path / "junk.npz", inputs)
    with pytest.raises(DataError, match="not found"):
        open_data(tmp_path / "none.npz", inputs)
    with pytest.raises(DataError, match="unknown type"):
        open_data(__file__, inputs)


def test_image_folder_with_classes_and_preprocessing(tmp_path, inputs):
    from PIL import Image

    for k, cls in enumerate(["cat", "dog"]):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            arr = np.full((12, 16, 3), 40 * (k + 1) + i, np.uint8)
            arr[..., 2] = 255
            Image.fromarray(arr).save(tmp_path / "imgs" / cls / f"{i}.png")
    spec = PreprocessSpec(resize=8, center_crop=8, scale=1 / 255, mean=[0, 0, 0], std=[1, 1, 1],
                          layout="NCHW", channel_order="BGR")
    src = open_data(tmp_path / "imgs", inputs, spec)
    assert len(src) == 4 and list(src.labels) == [0, 0, 1, 1]
    x = src.sample(0)["x"]
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, 0], 1.0, atol=1e-6)  # BGR: blue (255) comes first
    np.testing.assert_allclose(x[0, 2], 40 / 255, atol=1e-6)


def test_image_folder_shape_mismatch(tmp_path, inputs):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    with pytest.raises(DataError, match="224"):
        open_data(tmp_path / "imgs", inputs, PreprocessSpec())  # default crops to 224, the model takes 8


def test_synthetic_only_when_asked_and_loud(inputs, capsys):
    src = open_data("synthetic:4", inputs)
    assert len(src) == 4 and src.sample(0)["x"].shape == (1, 3, 8, 8)
    assert "SYNTHETIC" in capsys.readouterr().err


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_rows_are_read_on_demand_and_exact(tmp_path, compressed):
    from workbench.npz_rows import NpzRows

    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3, 4, 4)).astype(np.float32)
    y = rng.integers(0, 9, (50, 7)).astype(np.int16)
    p = tmp_path / "d.npz"
    (np.savez_compressed if compressed else np.savez)(p, x=x, y=y, labels=np.arange(50))
    r = NpzRows(p)
    assert r.members["x"].shape == (50, 3, 4, 4) and r.members["y"].dtype == np.int16
    for a, b in [(0, 7), (7, 30), (30, 50), (3, 9), (45, 60), (0, 50)]:  # in order, backwards, past the end
        np.testing.assert_array_equal(r.rows("x", a, b), x[a:b])
        np.testing.assert_array_equal(r.rows("y", a, b), y[a:b])
    np.testing.assert_array_equal(r.read("labels"), np.arange(50))
    r.close()


def test_prefetched_file_hash_is_the_file_hash_and_a_changed_file_is_hashed_again(tmp_path):
    """``prefetch_sha256`` hashes in the background what ``sha256_file`` then returns; a file rewritten in between
    (another size or time) is hashed afresh, never given the stale digest."""
    import hashlib
    import os

    from workbench import paths

    f = tmp_path / "d.npz"
    f.write_bytes(b"a" * 3_000_000)
    paths.prefetch_sha256(f)
    assert paths.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    paths.prefetch_sha256(f)
    f.write_bytes(b"b" * 3_000_001)
    os.utime(f, ns=(1, 1))
    assert paths.sha256_file(f) == hashlib.sha256(b"b" * 3_000_001).hexdigest()
    paths.prefetch_sha256(tmp_path / "missing.npz")  # nothing to hash: no error, nothing left pending
    assert not any(k[0].endswith(("missing.npz", "d.npz")) for k in paths._PREFETCHED)
