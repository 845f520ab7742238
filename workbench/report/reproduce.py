"""How to rebuild a report: commands that run exactly as printed, from the report's own folder.

The command as typed is kept (``argv``), but it rarely runs again elsewhere: its paths are relative to wherever
it was typed, its recipe files may have moved, and its ``-o`` would overwrite the report being read. So when a
report is written, ``relocate`` derives the *rerun* command from it: model and data paths relative to the
report's folder, each run's recipe written as a file beside the report (names made safe: a run called
``a/b`` never becomes a folder), a tune search (the Tune section) written beside it for ``--tune``, and an
``-o`` that names a new file. The same goes for the fix command.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from .data import RecipeFile, Reproduce

# flags of `qwb report` that take a value; those naming files are rewritten, the others kept as typed
_VALUE_FLAGS = {"--calib", "--eval", "--recipe", "--compare", "--bench", "--samples", "--title", "--from", "-o",
                "--output", "--metric", "--preprocess", "--tune"}
_REWRITTEN = {"--calib", "--eval", "--recipe", "--compare", "--from", "-o", "--output", "--tune"}
_DROPPED = {"--only", "--demo", "--debug"}  # --demo is put back explicitly when the run used it


def safe_name(label: str) -> str:
    """A file-name part from a run label: letters, digits, '.', '_' and '-' only (``a/b c`` -> ``a-b-c``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(label)).strip("-.")
    return s[:60] or "run"


def quote(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def kept_options(argv: list[str] | None) -> tuple[list[str], bool]:
    """The options of a typed ``qwb report`` command that do not name files (``--samples 50``, ``--bench cpu``,
    ``--metric ...``, ``--title ...``, ``--trust-model-code``), and whether it used ``--demo``."""
    out, demo = [], False
    args = list(argv or [])[2:]  # past "qwb report"
    i = 0
    while i < len(args):
        a = args[i]
        flag, eq, _ = a.partition("=")
        if a == "--demo":
            demo = True
        elif flag in _VALUE_FLAGS:
            step = 1 if eq else 2
            if flag not in _REWRITTEN:
                out += args[i:i + step]
            i += step
            continue
        elif a.startswith("-") and a not in _DROPPED:
            out.append(a)
        i += 1
    return out, demo


def _rel(path: str | None, folder: Path) -> str | None:
    """``path`` relative to ``folder`` when it is an existing file or folder; a data spec (``synthetic:64``) as is."""
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        return str(path)
    try:
        r = os.path.relpath(p.resolve(), folder.resolve())
    except ValueError:  # another drive (Windows): only an absolute path reaches it
        return str(p.resolve())
    return "./" + r if r.startswith("-") else r  # a file named like an option


def tune_file(report_path: Path) -> str:
    """The file beside a report that holds its tune search (what the rerun command's ``--tune`` reads)."""
    return f"{report_path.stem}-tune.json"


def relocate(reproduce: Reproduce, report_path: Path, tune: bool = False) -> Reproduce:
    """``reproduce`` with its rerun and fix commands made for ``report_path``'s folder (see the module doc);
    ``tune``: the report has a Tune section, written beside it as ``tune_file`` for the rerun's ``--tune``."""
    folder = report_path.parent
    stem = report_path.stem
    recipes = [RecipeFile(rf.label, f"{stem}-recipe-{safe_name(rf.label)}.toml", rf.toml) for rf in reproduce.recipes]
    kept, typed_demo = kept_options(reproduce.argv)
    demo = reproduce.demo or typed_demo
    if not demo and not reproduce.model:  # a report saved before the inputs were kept: nothing to rebuild from
        return Reproduce(reproduce.command, list(reproduce.argv), recipes, list(reproduce.notes))
    argv = ["qwb", "report"]
    if demo:
        argv.append("--demo")
    else:
        argv += [_rel(reproduce.model, folder) or "MODEL", "--calib", _rel(reproduce.calib, folder) or "DATA"]
        if reproduce.eval:
            argv += ["--eval", _rel(reproduce.eval, folder)]
    if recipes:
        argv += ["--recipe", recipes[0].file]
    if len(recipes) > 1:
        argv += ["--compare", recipes[1].file]
    if tune:
        argv += ["--tune", tune_file(report_path)]
    argv += [a for a in kept if a != "--demo"]
    if reproduce.samples and "--samples" not in kept and not any(a.startswith("--samples=") for a in kept):
        argv += ["--samples", str(reproduce.samples)]
    argv += ["-o", f"{stem}-reproduced{report_path.suffix or '.html'}"]
    model = ["--demo"] if demo else [_rel(reproduce.model, folder) or "MODEL"]
    same = [a for i, a in enumerate(kept) if a == "--trust-model-code" or a.startswith("--preprocess")
            or (i and kept[i - 1] == "--preprocess")]
    fix = ["qwb", "export-exclusions", *model, "--recipe", recipes[-1].file if recipes else "recipe.toml",
           *same, "--format", "all", "-o", f"{stem}-fix"]
    return Reproduce(reproduce.command, list(reproduce.argv), recipes, list(reproduce.notes), model=reproduce.model,
                     calib=reproduce.calib, eval=reproduce.eval, samples=reproduce.samples, demo=demo,
                     rerun_command=quote(argv), rerun_argv=argv, fix_command=quote(fix), fix_argv=fix)
