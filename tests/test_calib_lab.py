"""The calibration lab on a real (tiny) model: predictions hold against the model's actual tensors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from analyzers.calibration.grid import fake_quant
from analyzers.calibration.methods import METHODS, TIE_DB
from analyzers.onnx_utils import expose_tensors, make_session
from tests.models import conv_net, conv_net_data, save, save_npz
from workbench.calib_lab import CalibLab, build_lab
from workbench.recipe import Recipe
from workbench.session import Session


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    d = tmp_path_factory.mktemp("lab")
    model = save(conv_net(outlier_channel=8.0), d / "m.onnx")
    data = save_npz(d / "calib.npz", **conv_net_data(48, labels=False))
    return Session(model, data)


def _tensor_values(session, names):
    model = session.prepared.load_proto()
    sess = make_session(expose_tensors(model, names))
    x = np.load(session.spec.calib)["x"]
    return dict(zip(names, sess.run(names, {"x": x})))


def test_predicted_isolated_error_matches_fake_quantizing_the_real_tensors(session):
    lab = build_lab(session.graph, session.recipe, session.calibration(complete=True))
    names = [t.tensor for t in lab.tensors if t.tensor != "x"]
    values = _tensor_values(session, names)
    checked = 0
    for t in lab.tensors:
        if t.tensor not in values:
            continue
        v = values[t.tensor].ravel()
        from analyzers.calibration.grid import QuantSpec

        spec = QuantSpec(t.qtype, t.symmetric)
        for m in METHODS:
            st = t.methods[m]
            actual = float(((fake_quant(v, st.scale, st.zero_point, spec) - v).astype(np.float64) ** 2).mean())
            assert st.mse == pytest.approx(actual, rel=0.05, abs=1e-12), (t.tensor, m)
            checked += 1
    assert checked >= 4 * len(METHODS)


def test_winner_has_the_best_predicted_sqnr_and_ties_go_to_the_simpler_method(session):
    lab = build_lab(session.graph, session.recipe, session.calibration(complete=True))
    for t in lab.tensors:
        best = max(s.sqnr_db for s in t.methods.values())
        assert t.methods[t.winner].sqnr_db >= best - TIE_DB
        earlier = METHODS[: METHODS.index(t.winner)]
        assert all(t.methods[m].sqnr_db < best - TIE_DB for m in earlier), t.tensor
        assert t.comparison.gap_db(t.winner) == 0.0


def test_fused_activations_and_recipe_settings_are_shown(session):
    r = Recipe()
    r.settings.calibration_method = "entropy"
    r.set_percentile("conv2", 99.0)
    r.set_precision("relu3", "fp32")
    lab = build_lab(session.graph, r, session.calibration(complete=True))
    by = {t.tensor: t for t in lab.tensors}
    assert by["c1"].fused_into == "r1" and "r1" in by["c1"].note
    assert by["c3"].fused_into is None  # relu3 is kept in FP32: onnxruntime fuses nothing into conv3
    assert by["r2"].recipe_method == "percentile" and by["r2"].percentile == 99.0
    assert by["r2"].override_from == "conv2"
    assert by["r1"].recipe_method == "entropy" and by["r1"].percentile == r.settings.percentile
    # the lab's recipe column is exactly what quantization is given
    from workbench.recipe_ranges import tensor_ranges

    ranges = tensor_ranges(session.graph, r, session.calibration(complete=True))
    for name, t in by.items():
        assert (t.recipe_stats.lo, t.recipe_stats.hi) == (ranges[name].lo, ranges[name].hi)
    assert sum(lab.winners().values()) == len([t for t in lab.tensors if not t.fused_into])


def test_json_round_trip_is_versioned_and_strict(session):
    lab = build_lab(session.graph, session.recipe, session.calibration(complete=True), model="m", data="d")
    d = json.loads(json.dumps(lab.to_dict(), allow_nan=False))
    assert d["format"] == 1 and d["methods"] == list(METHODS)
    for t in d["tensors"]:
        h = t["histogram"]
        assert len(h["edges"]) == len(h["counts"]) + 1
        assert h["counts"][0] > 0 and h["counts"][-1] > 0  # empty bins trimmed
        assert sum(h["counts"]) == t["count"]
        assert h["edges"][0] <= t["min"] and t["max"] <= h["edges"][-1]
    back = CalibLab.from_dict(d)
    assert [t.tensor for t in back.tensors] == [t.tensor for t in lab.tensors]
    assert back.to_dict() == d
    with pytest.raises(ValueError, match="format"):
        CalibLab.from_dict({**d, "format": 99})


def test_nonfinite_values_are_noted(tmp_path):
    m = conv_net()
    data = conv_net_data(8, labels=False)
    data["x"][0, 0, 0, 0] = np.nan
    s = Session(save(m, tmp_path / "m.onnx"), save_npz(tmp_path / "d.npz", **data))
    lab = build_lab(s.graph, s.recipe, s.calibration(complete=True))
    assert lab.tensor("x").note == "1 NaN left out of the range"
    # a corner pixel reaches 2x2 outputs of each of conv1's 8 channels
    assert lab.tensor("x").histogram.special.nan == 1 and lab.tensor("c1").histogram.special.nan == 32
    assert lab.notes and lab.notes[0].startswith("NaN values left out of the range of x (1)")
    assert not lab.mask_path["tensors"]  # NaN is a fault, not a mask: nothing is kept in float for it
    assert np.isfinite(lab.tensor("x").methods["minmax"].hi)
    onnx.checker.check_model(s.prepared.load_proto())


@pytest.mark.parametrize("symmetric", [False, True])
def test_percentile_ranges_follow_onnxruntimes_percentile_calibrator(session, tmp_path, symmetric):
    """Same model, data and percentile as onnxruntime's own Percentile calibrator: the same tails are cut.

    onnxruntime reports the left edge of the bin where its CDF crosses the percentile, we interpolate
    between order statistics (numpy's convention), so the two differ by up to a bin of each histogram
    plus the gap between neighbouring values at that rank (wide in sparse tails).
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    from analyzers.calibration.grid import QuantSpec
    from analyzers.calibration.methods import derive_range
    from workbench.calibration_cache import op_types_for

    x = np.load(session.spec.calib)["x"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x[i:i + 8]} for i in range(0, len(x), 8)])

        def get_next(self):
            return next(self.it, None)

    cal = create_calibrator(str(session.prepared.path), op_types_for(session.recipe), str(tmp_path / "aug.onnx"),
                            CalibrationMethod.Percentile, extra_options={"symmetric": symmetric, "percentile": 99.9})
    cal.collect_data(Reader())
    theirs = cal.compute_data()
    ours = session.calibration(complete=True)
    raw = {"x": x, **_tensor_values(session, [t for t in ours.histograms if t != "x"])}
    spec = QuantSpec("s8", symmetric=True) if symmetric else QuantSpec("u8")
    for name, h in ours.histograms.items():
        lo, hi = derive_range(h, "percentile", spec, 99.9)
        t_lo, t_hi = (float(v) for v in theirs[name].range_value)
        v = np.sort(np.abs(raw[name].ravel()) if symmetric else raw[name].ravel()).astype(np.float64)
        # symmetric: onnxruntime clamps -t/+t to the data's min/max; the symmetric grid only depends on t
        pairs = ([(max(-lo, hi), max(-t_lo, t_hi), 0.999)] if symmetric
                 else [(hi, t_hi, 0.9995), (lo, t_lo, 0.0005)])
        for ours_v, their_v, q in pairs:
            k = int(q * (len(v) - 1))
            gap = float(np.max(np.diff(v[max(k - 2, 0):k + 3])))
            tol = 2 * max(abs(h.min), abs(h.max)) / 2048 + h.bin_width + gap  # theirs spans +-max|x|
            assert abs(ours_v - their_v) <= tol, (name, (lo, hi), (t_lo, t_hi))
