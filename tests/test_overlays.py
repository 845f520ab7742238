"""``qwb export-overlay``: Model Explorer node-data files, validated with Model Explorer's own classes."""

from __future__ import annotations

import json

import dacite
import onnx
import pytest
from model_explorer.node_data_builder import GraphNodeData

import resources
from tests.cli_util import qwb
from tests.models import conv_net, save


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    out = tmp_path_factory.mktemp("a") / "a.json"
    r = qwb("analyze", "--demo", "--json", out)
    assert r.returncode == 0, r.stderr
    return out, json.loads(out.read_text())


def test_overlays_load_as_model_explorer_node_data_and_carry_the_analysis(analysis, tmp_path):
    path, doc = analysis
    r = qwb("export-overlay", "--demo", "--from", path, "-o", tmp_path / "ov")
    assert r.returncode == 0, r.stderr
    assert "model-explorer " in r.stdout and "--node_data_paths=" in r.stdout
    graph = onnx.load(str(resources.DEMO_MODEL)).graph
    nodes = {n.name for n in graph.node}
    want = {"cumulative_sqnr.json": {lay["node"]: lay["cumulative"]["sqnr_db"] for lay in doc["layers"]},
            "isolated_sqnr.json": {lay["node"]: lay["isolated"]["sqnr_db"] for lay in doc["layers"] if lay["isolated"]},
            "rank_key.json": {lay["node"]: lay["rank_key_db"] for lay in doc["layers"] if lay["rank_key_db"] is not None},
            # the deployed per-layer view (analyze's default --kernels both) adds the kernel gap (issue 15)
            "kernel_gap.json": {lay["node"]: lay["deployed"]["kernel_gap_db"] for lay in doc["layers"] if lay["deployed"]}}
    assert want["kernel_gap.json"]
    for name, values in want.items():
        data = json.loads((tmp_path / "ov" / name).read_text())
        assert list(data) == [graph.name]  # Model Explorer's ONNX graph id
        g = dacite.from_dict(GraphNodeData, data[graph.name], config=dacite.Config(strict=True))
        got = {k: v.value for k, v in g.results.items()}
        assert got == pytest.approx({k: v for k, v in values.items() if v is not None}) and set(got) <= nodes
        assert [t.value for t in g.thresholds] == sorted(t.value for t in g.thresholds) and not g.gradient


def test_an_analysis_of_another_model_is_refused(analysis, tmp_path):
    other = save(conv_net(), tmp_path / "other.onnx")
    r = qwb("export-overlay", other, "--from", analysis[0], "-o", tmp_path / "ov")
    assert r.returncode == 2 and "none of the" in r.stderr and "fix:" in r.stderr and not (tmp_path / "ov").exists()


def test_a_file_without_an_analysis_is_one_clear_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"format": 1}')
    r = qwb("export-overlay", "--demo", "--from", bad, "-o", tmp_path / "ov")
    assert r.returncode == 2 and "holds no analysis" in r.stderr and "Traceback" not in r.stderr
