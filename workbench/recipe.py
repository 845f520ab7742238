"""The quantization recipe: global settings plus per-layer overrides, saved as a human-readable TOML file.

A recipe is what a user tunes and what a colleague needs to reproduce a result, so it is typed,
versioned (with a migration hook for older files), round-trips exactly, and refuses layer names that
do not exist in the model instead of silently ignoring them.
"""

from __future__ import annotations

import difflib
import math
import tomllib
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import tomli_w

from analyzers.output_kinds import KINDS

from .errors import RecipeError
from .graph import default_quantizable_op_types
from .safe_paths import write_text

RECIPE_VERSION = 1

ACTIVATION_TYPES = ("u8", "s8", "u16", "s16")
WEIGHT_TYPES = ("s8", "u8", "s16", "u16")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy", "mse")
PRECISIONS = ("int8", "int16", "fp32")
MASK_HANDLING = ("float", "clamp")  # see workbench/mask_path.py
LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")
MAX_IMAGE_SIDE = 16384  # preprocess.resize / center_crop: beyond this one image would not fit in memory


@dataclass
class GlobalSettings:
    """Settings that apply to every layer unless a layer override says otherwise."""

    activation_type: str = "u8"
    weight_type: str = "s8"
    per_channel: bool = True
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    reduce_range: bool = False
    calibration_method: str = "minmax"
    percentile: float = 99.999  # used when calibration_method == "percentile"
    op_types: list[str] = field(default_factory=list)  # empty: every op type onnxruntime can quantize
    mask_handling: str = "float"  # nodes around -inf / finfo.min mask tensors: kept in float, or "clamp"ed

    def validate(self) -> None:
        _choice("activation_type", self.activation_type, ACTIVATION_TYPES)
        _choice("mask_handling", self.mask_handling, MASK_HANDLING)
        _choice("weight_type", self.weight_type, WEIGHT_TYPES)
        _choice("calibration_method", self.calibration_method, CALIBRATION_METHODS)
        _percentile("percentile", self.percentile)
        for name in ("per_channel", "symmetric_activations", "symmetric_weights", "reduce_range"):
            if not isinstance(getattr(self, name), bool):
                raise RecipeError(f"recipe: global.{name} must be true or false, not {getattr(self, name)!r}",
                                  f"write {name} = true or {name} = false")
        if not isinstance(self.op_types, list) or not all(isinstance(o, str) for o in self.op_types):
            raise RecipeError("recipe: global.op_types must be a list of op type names",
                              "e.g. op_types = [\"Conv\", \"Gemm\"]")
        _known_op_types(self.op_types)


@dataclass
class LayerOverride:
    """What one layer does differently: its precision, its calibration percentile and/or calibration method."""

    precision: str | None = None  # int8 | int16 | fp32 (fp32 = excluded from quantization)
    percentile: float | None = None  # calibration percentile for this layer's output activation
    method: str | None = None  # calibration method for this layer's output activation (a percentile wins)

    def validate(self, layer: str) -> None:
        if self.precision is not None:
            _choice(f"layers.{layer}.precision", self.precision, PRECISIONS)
        if self.percentile is not None:
            _percentile(f"layers.{layer}.percentile", self.percentile)
        if self.method is not None:
            _choice(f"layers.{layer}.method", self.method, CALIBRATION_METHODS)

    def is_empty(self) -> bool:
        return self.precision is None and self.percentile is None and self.method is None


@dataclass
class OutputSpec:
    """How one model output is judged: its kind (overriding the detected one) and, for CTC, the blank index."""

    kind: str | None = None  # classifier | embedding | sequence | dense
    blank: int | None = None  # sequence outputs: the CTC blank class (default 0)

    def validate(self, output: str) -> None:
        if self.kind is not None:
            _choice(f"outputs.{output}.kind", self.kind, KINDS)
        if self.blank is not None and (isinstance(self.blank, bool) or not isinstance(self.blank, int)
                                       or self.blank < 0):
            raise RecipeError(f"recipe: outputs.{output}.blank = {self.blank!r} must be a class index (>= 0)",
                              "e.g. blank = 0 (the CTC blank class of that output)")


@dataclass
class PreprocessSpec:
    """How a folder of images becomes model input; stored in the recipe so a run is reproducible."""

    resize: int | None = 256  # shorter side, before cropping; None keeps the size
    center_crop: int | None = 224
    scale: float = 1.0 / 255.0
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    layout: str = "NCHW"
    channel_order: str = "RGB"
    grayscale: bool = False

    def validate(self) -> None:
        _choice("preprocess.layout", self.layout, LAYOUTS)
        _choice("preprocess.channel_order", self.channel_order, CHANNEL_ORDERS)
        for k in ("resize", "center_crop"):
            v = getattr(self, k)
            if v is not None and not 0 < v <= MAX_IMAGE_SIDE:
                raise RecipeError(f"recipe: preprocess.{k} = {v!r} must be a size in pixels, 1 to {MAX_IMAGE_SIDE}",
                                  f"e.g. {k} = 224, or leave {k} out to keep the size")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise RecipeError(f"recipe: preprocess.scale = {self.scale!r} must be a finite, non-zero number",
                              "e.g. scale = 0.00392156862745098 (1/255)")
        for k in ("mean", "std"):
            v = getattr(self, k)
            if len(v) not in (1, 3) or not all(math.isfinite(x) for x in v):
                raise RecipeError(f"recipe: preprocess.{k} = {v!r} must hold 1 or 3 finite numbers (one per "
                                  "channel)", f"e.g. {k} = {list(getattr(PreprocessSpec(), k))}")
        if any(s == 0 for s in self.std):
            raise RecipeError("recipe: preprocess.std must not contain 0", "e.g. std = [0.229, 0.224, 0.225]")


@dataclass
class Recipe:
    """Global settings, optional image preprocessing, and per-layer overrides keyed by node name."""

    version: int = RECIPE_VERSION
    settings: GlobalSettings = field(default_factory=GlobalSettings)
    preprocess: PreprocessSpec | None = None
    layers: dict[str, LayerOverride] = field(default_factory=dict)
    outputs: dict[str, OutputSpec] = field(default_factory=dict)

    # -- queries -----------------------------------------------------------------------------
    def precision_of(self, node: str) -> str:
        o = self.layers.get(node)
        return o.precision if o and o.precision else "int8"

    def percentile_of(self, node: str) -> float | None:
        o = self.layers.get(node)
        return o.percentile if o else None

    def method_of(self, node: str) -> str | None:
        o = self.layers.get(node)
        return o.method if o else None

    def excluded_nodes(self) -> list[str]:
        return [n for n, o in self.layers.items() if o.precision == "fp32"]

    def int16_nodes(self) -> list[str]:
        return [n for n, o in self.layers.items() if o.precision == "int16"]

    # -- edits (used by the GUI and the exclusion search) ------------------------------------------
    def set_precision(self, node: str, precision: str | None) -> None:
        if precision is not None:
            _choice("precision", precision, PRECISIONS)
        o = self.layers.setdefault(node, LayerOverride())
        o.precision = None if precision == "int8" else precision
        if o.is_empty():
            del self.layers[node]

    def set_percentile(self, node: str, percentile: float | None) -> None:
        if percentile is not None:
            _percentile("percentile", percentile)
        o = self.layers.setdefault(node, LayerOverride())
        o.percentile = percentile
        if o.is_empty():
            del self.layers[node]

    def set_method(self, node: str, method: str | None) -> None:
        if method is not None:
            _choice("method", method, CALIBRATION_METHODS)
        o = self.layers.setdefault(node, LayerOverride())
        o.method = method
        if o.is_empty():
            del self.layers[node]

    def copy(self) -> "Recipe":
        return Recipe.from_dict(self.to_dict())

    # -- validation --------------------------------------------------------------------------
    def output_overrides(self) -> dict[str, dict]:
        """``{output: {"kind": ..., "blank": ...}}`` for ``analyzers.output_kinds.apply_overrides``."""
        return {n: asdict(o) for n, o in self.outputs.items()}

    def validate(self, node_names=None, output_names=None) -> None:
        """Check values; with ``node_names`` (``output_names``) also refuse overrides for layers (outputs) the
        model lacks."""
        if self.version != RECIPE_VERSION:
            raise RecipeError(f"recipe: version {self.version} is not {RECIPE_VERSION}", f"write version = {RECIPE_VERSION}")
        self.settings.validate()
        if self.preprocess:
            self.preprocess.validate()
        for name, o in self.layers.items():
            o.validate(name)
        for name, o in self.outputs.items():
            o.validate(name)
        if output_names is not None:
            unknown_out = [n for n in self.outputs if n not in set(output_names)]
            if unknown_out:
                close = difflib.get_close_matches(unknown_out[0], list(output_names), n=1)
                raise RecipeError(f"recipe names output {unknown_out[0]!r} that the model does not have"
                                  + (f" (did you mean {close[0]!r}?)" if close else ""),
                                  f"the model's outputs are: {', '.join(output_names)}")
        if node_names is not None:
            known = set(node_names)
            unknown = [n for n in self.layers if n not in known]
            if unknown:
                hints = []
                for n in unknown[:5]:
                    close = difflib.get_close_matches(n, known, n=1)
                    hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                raise RecipeError(
                    f"recipe names {len(unknown)} layer(s) that are not in the model: {', '.join(hints)}{more}",
                    "use node names as listed by `qwb analyze` or the GUI's layer table, or remove those entries")

    def differences_from_default(self) -> list[str]:
        """Human-readable lines describing how this recipe departs from the defaults (for reports)."""
        out = []
        d = GlobalSettings()
        for f in fields(GlobalSettings):
            a, b = getattr(self.settings, f.name), getattr(d, f.name)
            if a != b:
                out.append(f"{f.name} = {a!r} (default {b!r})")
        for name, o in sorted(self.layers.items()):
            parts = []
            if o.precision:
                parts.append(f"precision {o.precision}")
            if o.percentile is not None:
                parts.append(f"percentile {o.percentile}")
            if o.method is not None:
                parts.append(f"method {o.method}")
            out.append(f"layer {name}: " + ", ".join(parts))
        for name, o in sorted(self.outputs.items()):
            out.append(f"output {name}: " + ", ".join(f"{k} {v}" for k, v in asdict(o).items() if v is not None))
        return out

    # -- (de)serialization -------------------------------------------------------------------
    def to_dict(self) -> dict:
        d: dict = {"version": self.version, "global": asdict(self.settings)}
        if self.preprocess is not None:
            d["preprocess"] = {k: v for k, v in asdict(self.preprocess).items() if v is not None}
        if self.layers:
            d["layers"] = {n: {k: v for k, v in asdict(o).items() if v is not None}
                           for n, o in self.layers.items()}
        if self.outputs:
            d["outputs"] = {n: {k: v for k, v in asdict(o).items() if v is not None} for n, o in self.outputs.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "recipe") -> "Recipe":
        d = migrate(dict(d), source)
        known_top = {"version", "global", "preprocess", "layers", "outputs"}
        extra = set(d) - known_top
        if extra:
            raise RecipeError(f"{source}: unknown section(s) {sorted(extra)}",
                              f"allowed top-level keys are {sorted(known_top)}")
        settings = _build(GlobalSettings, d.get("global", {}), f"{source} [global]")
        pre = _build(PreprocessSpec, d["preprocess"], f"{source} [preprocess]") if "preprocess" in d else None
        if pre is not None:
            for k in ("resize", "center_crop"):
                if k not in d["preprocess"]:
                    setattr(pre, k, None)
        for section in ("global", "preprocess", "layers", "outputs"):
            if section in d and not isinstance(d[section], dict):
                raise RecipeError(f"{source}: {section} = {d[section]!r} must be a table, not "
                                  f"{_type_name(d[section])}", f"write it as [{section}] with keys under it")
        layers = {}
        for name, body in (d.get("layers") or {}).items():
            if not isinstance(body, dict):
                raise RecipeError(f"{source}: layers.{name} must be a table",
                                  f"write [layers.\"{name}\"] with keys under it, e.g. precision = \"fp32\"")
            layers[name] = _build(LayerOverride, body, f"{source} [layers.{name}]")
        outputs = {}
        for name, body in (d.get("outputs") or {}).items():
            if not isinstance(body, dict):
                raise RecipeError(f"{source}: outputs.{name} must be a table",
                                  f"write [outputs.\"{name}\"] with keys under it, e.g. kind = \"embedding\"")
            outputs[name] = _build(OutputSpec, body, f"{source} [outputs.{name}]")
        r = cls(version=d["version"], settings=settings, preprocess=pre, layers=layers, outputs=outputs)
        try:
            r.validate()
        except RecipeError as e:  # name the file, not just "recipe"
            if source == "recipe" or not e.message.startswith("recipe: "):
                raise
            raise RecipeError(f"{source}: {e.message.removeprefix('recipe: ')}", e.fix) from e
        return r

    def dumps(self) -> str:
        header = ("# Quant Workbench recipe: global quantization settings and per-layer overrides.\n"
                  "# precision: int8 | int16 | fp32 (fp32 = keep the layer in float);\n"
                  "# percentile: calibration percentile for that layer's output;\n"
                  "# method: calibration method for that layer's output (minmax | percentile | entropy | mse).\n")
        return header + tomli_w.dumps(self.to_dict())

    @classmethod
    def loads(cls, text: str, source: str = "recipe") -> "Recipe":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RecipeError(f"{source} is not valid TOML: {e}", "fix the syntax (see docs/recipe.md)") from e
        return cls.from_dict(data, source)

    def save(self, path: str | Path) -> None:
        """Write the recipe atomically (a fresh temporary file beside it, then a rename)."""
        write_text(path, self.dumps())

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise RecipeError(f"Recipe file not found: {path}", "check the path given to --recipe") from e
        except UnicodeDecodeError as e:
            raise RecipeError(f"{path} is not a text (TOML) recipe file", "pass a .toml recipe") from e
        return cls.loads(text, str(path))


# -- migration -----------------------------------------------------------------------------------
def _migrate_0_to_1(d: dict, source: str = "recipe") -> dict:
    """Version 0 (unversioned drafts) called the global table ``settings`` and used ``exclude = [...]``."""
    if "settings" in d and "global" not in d:
        d["global"] = d.pop("settings")
    exclude = d.pop("exclude", []) or []
    if not isinstance(exclude, list) or not all(isinstance(n, str) for n in exclude):
        raise RecipeError(f"{source}: exclude = {exclude!r} must be a list of node names",
                          'e.g. exclude = ["fc2.Gemm"], or write version = 1 with [layers."fc2.Gemm"] precision = "fp32"')
    if exclude and not isinstance(d.setdefault("layers", {}), dict):
        raise RecipeError(f"{source}: layers = {d['layers']!r} must be a table, not {_type_name(d['layers'])}",
                          "write it as [layers] with keys under it")
    for name in exclude:
        d["layers"].setdefault(name, {})["precision"] = "fp32"
    d["version"] = 1
    return d


MIGRATIONS = {0: _migrate_0_to_1}


def migrate(d: dict, source: str = "recipe") -> dict:
    """Bring an older recipe dict up to RECIPE_VERSION, one step at a time."""
    version = d.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise RecipeError(f"{source}: version = {version!r} must be a recipe version number (an integer, "
                          f"0 to {RECIPE_VERSION})", f"write version = {RECIPE_VERSION}")
    if version > RECIPE_VERSION:
        raise RecipeError(f"{source} was written by a newer Quant Workbench (recipe version {version}, "
                          f"this one reads up to {RECIPE_VERSION})", "upgrade quant-workbench")
    while version < RECIPE_VERSION:
        d = MIGRATIONS[version](d, source)
        version = d["version"]
    return d


# -- helpers ---------------------------------------------------------------------------------------
def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value).lower(), list(allowed), n=1)
        raise RecipeError(f"recipe: {name} = {value!r} is not one of {', '.join(allowed)}",
                          f"write {name.rsplit('.', 1)[-1]} = \"{close[0] if close else list(allowed)[0]}\"")


def _percentile(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or not 50.0 < float(value) <= 100.0:
        raise RecipeError(f"recipe: {name} = {value!r} must be a number in (50, 100]",
                          f"write {name.rsplit('.', 1)[-1]} = 99.99 (or another value above 50, at most 100)")


def _build(cls, body: dict, where: str):
    if not isinstance(body, dict):
        raise RecipeError(f"{where} must be a table", "write it as a [section] with keys under it")
    names = {f.name for f in fields(cls)}
    unknown = set(body) - names
    if unknown:
        close = {u: difflib.get_close_matches(u, names, n=1) for u in unknown}
        desc = ", ".join(f"{u!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for u, c in close.items())
        raise RecipeError(f"{where}: unknown key(s) {desc}", f"allowed keys: {', '.join(sorted(names))}")
    hints = typing.get_type_hints(cls)
    for k, v in body.items():
        _check_type(where, k, v, hints[k])
    obj = cls(**body)
    for f in fields(cls):
        if f.type in ("float", "float | None") and isinstance(getattr(obj, f.name), int) \
                and not isinstance(getattr(obj, f.name), bool):
            setattr(obj, f.name, float(getattr(obj, f.name)))
    return obj


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURAL = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _type_name(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _fits(v, tp) -> bool:
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    return True


def _check_type(where: str, key: str, value, tp) -> None:
    """Refuse a value of the wrong TOML type, naming the key and the type it needs (the dataclasses would
    take anything, and a string where a number belongs fails much later, far from the recipe)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list) or not all(_fits(x, item) for x in value):
            raise RecipeError(f"{where}: {key} = {value!r} must be a list of {_PLURAL[item]}",
                              f"fix {key} in the recipe")
        return
    base = args[0] if args else tp
    if not _fits(value, base):
        raise RecipeError(f"{where}: {key} = {value!r} must be {_TYPE_WORDS[base]}, not {_type_name(value)}",
                          f"fix {key} in the recipe" + (" or leave it out" if args else ""))


def _known_op_types(op_types: list[str]) -> None:
    """Refuse op types onnxruntime's quantizer does not know: such an entry quantizes nothing, silently."""
    known = sorted(default_quantizable_op_types())
    unknown = [o for o in op_types if o not in known]
    if not unknown:
        return
    lower = {k.lower(): k for k in known}
    hints = []
    for o in unknown[:5]:
        close = [lower[o.lower()]] if o.lower() in lower else difflib.get_close_matches(o, known, n=1)
        hints.append(f"{o!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise RecipeError(f"recipe: global.op_types names op type(s) onnxruntime cannot quantize: {', '.join(hints)}",
                      f"use op types from: {', '.join(known)}")
