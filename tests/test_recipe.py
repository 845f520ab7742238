"""The recipe file: exact round trip, versioning and migration, validation with clear messages."""

from __future__ import annotations

import pytest

from workbench.errors import RecipeError
from workbench.recipe import RECIPE_VERSION, GlobalSettings, LayerOverride, PreprocessSpec, Recipe


def _full_recipe() -> Recipe:
    r = Recipe(settings=GlobalSettings(activation_type="s8", weight_type="s8", per_channel=False,
                                       symmetric_activations=True, calibration_method="percentile",
                                       percentile=99.99, op_types=["Conv", "Gemm"]),
               preprocess=PreprocessSpec(resize=None, center_crop=32, layout="NHWC", channel_order="BGR"))
    r.set_precision("conv1", "fp32")
    r.set_precision("layer.with \"quotes\" and dots", "int16")
    r.set_percentile("conv2", 99.9)
    return r


def test_round_trip_is_exact(tmp_path):
    r = _full_recipe()
    p = tmp_path / "r.toml"
    r.save(p)
    text = p.read_text()
    r2 = Recipe.load(p)
    assert r2 == r
    r2.save(tmp_path / "r2.toml")
    assert (tmp_path / "r2.toml").read_text() == text
    assert "version = 1" in text and "[layers.conv1]" in text


def test_defaults_round_trip(tmp_path):
    Recipe().save(tmp_path / "d.toml")
    assert Recipe.load(tmp_path / "d.toml") == Recipe()


def test_setting_int8_removes_override():
    r = Recipe()
    r.set_precision("a", "fp32")
    r.set_precision("a", "int8")
    assert r.layers == {}
    r.set_percentile("b", 99.0)
    r.set_percentile("b", None)
    assert r.layers == {}


def test_unknown_layers_are_named():
    r = Recipe(layers={"conv9": LayerOverride(precision="fp32"), "conv1x": LayerOverride(percentile=99.0)})
    with pytest.raises(RecipeError) as e:
        r.validate(["conv1", "conv2"])
    msg = str(e.value)
    assert "conv9" in msg and "conv1x" in msg and "did you mean 'conv1'" in msg


def test_migration_from_unversioned_draft():
    old = '[settings]\nactivation_type = "s8"\nexclude = ["conv1"]\n'
    with pytest.raises(RecipeError):  # 'exclude' inside [settings] is not a known key
        Recipe.loads(old)
    r = Recipe.loads('exclude = ["conv1"]\n[settings]\nactivation_type = "s8"\n')
    assert r.version == RECIPE_VERSION
    assert r.settings.activation_type == "s8"
    assert r.precision_of("conv1") == "fp32"


def test_newer_version_is_refused():
    with pytest.raises(RecipeError, match="newer Quant Workbench"):
        Recipe.loads("version = 99\n")


@pytest.mark.parametrize("text, fragment", [
    ('version = 1\n[global]\nactivation_type = "u4"\n', "activation_type"),
    ('version = 1\n[global]\npercentile = 30\n', "percentile"),
    ('version = 1\n[global]\ncalib_method = "minmax"\n', "did you mean 'calibration_method'"),
    ('version = 1\n[layers.conv1]\nprecision = "fp8"\n', "layers.conv1.precision"),
    ('version = 1\n[layers]\nconv1 = "fp32"\n', "must be a table"),
    ('version = 1\n[global\n', "not valid TOML"),
    ('version = 1\n[extras]\n', "unknown section"),
])
def test_bad_recipes_have_clear_messages(text, fragment):
    with pytest.raises(RecipeError, match=fragment):
        Recipe.loads(text)


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        Recipe.load(tmp_path / "missing.toml")


def test_differences_from_default():
    lines = _full_recipe().differences_from_default()
    assert any(line.startswith("activation_type = 's8'") for line in lines)
    assert "layer conv1: precision fp32" in lines
