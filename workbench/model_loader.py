"""Turn whatever the user points at (an ONNX file, a PyTorch artefact, a factory) into a ModelProto.

Only loading lives here; making the model ready for quantization is ``model_prep``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import pickle
import re
import types
from pathlib import Path

import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from .errors import ModelLoadError, WorkbenchError
from .safe_paths import check_input

TORCHSCRIPT_SUFFIXES = {".pt", ".pth", ".ts", ".torchscript", ".jit"}
EXPORTED_PROGRAM_SUFFIXES = {".pt2", ".ep"}
_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_factory_spec(spec: str) -> bool:
    """``package.module:factory`` (and not an existing file that happens to contain a colon)."""
    return bool(_FACTORY_RE.match(spec)) and not Path(spec).exists()


def code_to_run(spec: str | Path) -> str | None:
    """What opening ``spec`` would run, in words, or None for a model that runs no code of its own (ONNX).
    Such models open only when the user trusts them (``--trust-model-code``, or the GUI's confirmation)."""
    spec_s = str(spec)
    if is_factory_spec(spec_s):
        mod, fn = spec_s.split(":")
        return f"imports the Python module {mod} (running its top-level code) and calls {fn}()"
    suffix = Path(spec_s).suffix.lower()
    if suffix in TORCHSCRIPT_SUFFIXES:
        return "loads a TorchScript program and runs it to export it to ONNX"
    if suffix in EXPORTED_PROGRAM_SUFFIXES:
        return "loads a torch.export program (tensors only, no pickled objects) and runs it to export it to ONNX"
    return None


def load_model(spec: str | Path, example_input=None, opset: int = 17,
               trust_code: bool = False) -> tuple[onnx.ModelProto, list[str]]:
    """Load ``spec`` as ONNX, returning the model and notes on what was done to get it.

    ``example_input`` (a dict of name -> array, usually the first calibration sample) gives PyTorch
    artefacts that do not carry their own example inputs (TorchScript files) the shapes to export with.
    PyTorch models and factories run code, so they load only with ``trust_code`` (see ``code_to_run``).
    """
    spec_s = str(spec)
    what = code_to_run(spec_s)
    if what and not trust_code and (is_factory_spec(spec_s) or Path(spec_s).is_file()):
        raise ModelLoadError(f"{spec_s} runs code when opened: Quant Workbench {what}",
                             "if you trust it, pass --trust-model-code (the GUI asks first); or export the "
                             "model to ONNX yourself and open the .onnx file")
    if is_factory_spec(spec_s):
        return _from_factory(spec_s, opset)
    path = Path(spec_s)
    if not path.exists():
        raise ModelLoadError(f"Model file not found: {path}", "check the path, or pass an ONNX file, a "
                             "TorchScript/torch.export file, or package.module:factory")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not a model file", "pass the .onnx file inside it")
    check_input(path, "model")
    suffix = path.suffix.lower()
    if suffix in TORCHSCRIPT_SUFFIXES | EXPORTED_PROGRAM_SUFFIXES:
        return _from_torch_file(path, example_input, opset)
    return load_onnx(path), []


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load an ONNX file with any external weight files that sit next to it."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises many kinds for a file that is not ONNX
        raise ModelLoadError(
            f"{path} is not a readable ONNX model ({type(e).__name__}: {str(e)[:200]})",
            "pass an .onnx file exported by your framework (or a PyTorch file, see `qwb quantize --help`)",
        ) from e

    missing = sorted({ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)
                      and not (path.parent / ExternalDataInfo(t).location).is_file()})
    if missing:
        raise ModelLoadError(f"{path}: its weights live in external data file(s) that are missing: "
                             f"{', '.join(missing)} (looked in {path.parent})",
                             "keep the external data files next to the .onnx file, with the names the model expects")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as e:  # noqa: BLE001 - protobuf raises many kinds for a file that is not ONNX
        raise ModelLoadError(
            f"{path} is not a readable ONNX model ({type(e).__name__}: {str(e)[:200]})",
            "pass an .onnx file exported by your framework (or a PyTorch file, see `qwb quantize --help`)",
        ) from e
    if not model.graph.node:
        raise ModelLoadError(f"{path} parsed as ONNX but holds no graph nodes (is it really an ONNX model?)",
                             "pass the .onnx file exported by your framework")
    return model


def _require_torch():
    try:
        import torch  # noqa: PLC0415 - optional dependency, imported only on this route
    except ImportError as e:
        raise ModelLoadError("PyTorch is not installed, so PyTorch models cannot be imported",
                             "pip install torch==2.13.0 && pip install 'quant-workbench[torch]'") from e
    return torch


def _as_tuple(example) -> tuple:
    if isinstance(example, (list, tuple)):
        return tuple(example)
    return (example,)


def _export(torch, module_or_program, args: tuple, opset: int, dynamo: bool, input_names=None):
    """Export to ONNX in memory with a dynamic batch axis when possible (so analysis can batch samples)."""

    notes = []
    if dynamo:
        kw = dict(dynamo=True, opset_version=max(opset, 18), input_names=input_names, optimize=True, verbose=False)
        attempts = [kw]
        if isinstance(module_or_program, torch.nn.Module) and all(isinstance(a, torch.Tensor) and a.ndim
                                                                    for a in args):
            # a dynamic batch axis lets analysis run many samples per call; fall back to static if it fails
            attempts.insert(0, dict(kw, dynamic_shapes=tuple({0: torch.export.Dim.AUTO} for _ in args)))
        error = None
        for i, options in enumerate(attempts):
            try:
                onnx_program = torch.onnx.export(module_or_program, args, **options)
                if i and len(attempts) > 1:
                    notes.append("exported with a fixed batch size (a dynamic batch axis failed to export)")
                return onnx_program.model_proto, notes
            except Exception as e:  # noqa: BLE001
                error = e
        raise ModelLoadError(f"torch.onnx.export failed: {type(error).__name__}: {str(error)[:300]}",
                             "export the model to ONNX yourself and open the .onnx file") from error
    buf = io.BytesIO()
    names = input_names or [f"input_{i}" for i in range(len(args))]
    dyn = {n: {0: "batch"} for n in names}
    try:
        torch.onnx.export(module_or_program, args, buf, dynamo=False, opset_version=opset, input_names=names,
                          dynamic_axes=dyn)
    except Exception:  # noqa: BLE001 - retry with a static batch before giving up
        buf = io.BytesIO()
        try:
            torch.onnx.export(module_or_program, args, buf, dynamo=False, opset_version=opset, input_names=names)
            notes.append("exported with a fixed batch size (a dynamic batch axis failed to export)")
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"torch.onnx.export failed: {type(e).__name__}: {str(e)[:300]}",
                                 "export the model to ONNX yourself and open the .onnx file") from e
    return onnx.load_from_string(buf.getvalue()), notes


def _refuse_pickle(*args, **kwargs):
    raise ModelLoadError("the torch.export archive holds pickled Python objects, which can run code when loaded",
                         "save the program with tensors only (torch.export.save), or export it to ONNX yourself")


@contextlib.contextmanager
def _weights_only(torch):
    """Load a ``.pt2`` archive with tensors only: torch's loader otherwise falls back to
    ``torch.load(weights_only=False)`` (full pickle, which runs code) for example inputs and constants."""
    package = importlib.import_module("torch.export.pt2_archive._package")
    saved_env = {k: os.environ.get(k) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    saved_pickle, saved_obj = package.pickle, torch._C._pickle_load_obj
    package.pickle = types.SimpleNamespace(loads=_refuse_pickle, load=_refuse_pickle)
    torch._C._pickle_load_obj = _refuse_pickle
    try:
        yield
    finally:
        package.pickle, torch._C._pickle_load_obj = saved_pickle, saved_obj
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Silence ``name``'s warnings: torch.export logs a whole traceback before trying its older format, and a
    user error is one error line, not a page of torch internals."""
    log = logging.getLogger(name)
    saved = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(saved)


def _from_torch_file(path: Path, example_input, opset: int):
    torch = _require_torch()
    suffix = path.suffix.lower()
    if suffix in EXPORTED_PROGRAM_SUFFIXES:
        try:
            with _weights_only(torch), _quiet_logger("torch.export"):
                program = torch.export.load(str(path))
        except WorkbenchError:
            raise
        except pickle.UnpicklingError as e:
            raise ModelLoadError(f"{path} holds pickled Python objects beside its tensors; they are not loaded "
                                 "because unpickling them can run code",
                                 "save the program from tensors only (torch.export.save), or export it to ONNX "
                                 "yourself and open the .onnx file") from e
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"{path} is not a saved torch.export program, or holds more than tensors "
                                 f"({type(e).__name__}: {str(e)[:200]})",
                                 "save it with torch.export.save(program, 'model.pt2') from tensors only; "
                                 "pickled Python objects are never loaded") from e
        args = program.example_inputs[0] if program.example_inputs else None
        if not args and example_input is not None:
            args = tuple(torch.from_numpy(v) for v in example_input.values())
        if not args:
            raise ModelLoadError(f"{path} carries no example inputs", "pass --calib data so one sample can be used")
        model, notes = _export(torch, program, tuple(args), opset, dynamo=True)
        return model, [f"exported the torch.export program {path.name} to ONNX (opset "
                       f"{model.opset_import[0].version})"] + notes
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"{path} is not a TorchScript file ({type(e).__name__}: {str(e)[:200]})",
                             "save with torch.jit.save(torch.jit.script(model), path), or use "
                             "torch.export (.pt2) or a package.module:factory") from e
    if example_input is None:
        raise ModelLoadError(f"{path}: a TorchScript file does not record its input shapes",
                             "pass --calib DATA so the first sample gives the shapes to export with")
    module.eval()
    names = list(example_input)
    args = tuple(torch.from_numpy(example_input[n]) for n in names)
    model, notes = _export(torch, module, args, opset, dynamo=False, input_names=names)
    return model, [f"exported the TorchScript module {path.name} to ONNX (opset {opset})"] + notes


def _from_factory(spec: str, opset: int):
    torch = _require_torch()
    mod_name, fn_name = spec.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise ModelLoadError(f"Cannot import the model factory {spec}: {e}",
                             "make the module importable (PYTHONPATH) and check the function name") from e
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - the user's code failed: say so, with its message
        raise ModelLoadError(f"the model factory {spec} raised {type(e).__name__}: {str(e)[:300]}",
                             "fix the factory (run it in Python to see the traceback)") from e
    try:
        module, example = result
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{spec} must return (torch.nn.Module, example_inputs); it returned "
                             f"{type(result).__name__ if 'result' in dir() else 'an error'}: {e}",
                             "return a tuple (module, example_inputs)") from e
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"{spec} returned {type(module).__name__} where a torch.nn.Module was expected",
                             "return a tuple (module, example_inputs)")
    module.eval()
    args = _as_tuple(example)
    model, notes = _export(torch, module, args, opset, dynamo=True)
    return model, [f"exported {spec} to ONNX with torch.onnx.export"] + notes
