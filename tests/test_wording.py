"""One name for the ranking figure everywhere users read it: "effective SQNR", defined as
``workbench.formatting.EFFECTIVE_SQNR_DEF``; older names ("rank key", "min(isolated SQNR, channel mean)") are gone
from every screen, file and help text."""

from __future__ import annotations

import re
from pathlib import Path

from analyzers.diff_types import AnalysisResult
from tests.results_factory import make_result
from workbench.formatting import EFFECTIVE_SQNR_DEF
from workbench.overlays import overlays

ROOT = Path(__file__).resolve().parent.parent
# user-facing text lives in these; identifiers (rank_key_db, "rank_key" metric ids) are a JSON/settings contract
WHERE = ["ui", "workbench/report", "workbench/cli", "workbench/overlays.py", "workbench/formatting.py"]
OLD = re.compile(r"rank(ing)?[ -]key|min\(isolated|channel-mean-based", re.IGNORECASE)


def test_no_other_wording_for_the_effective_sqnr():
    hits = []
    for where in WHERE:
        p = ROOT / where
        for f in [p] if p.is_file() else sorted(p.rglob("*.py")):
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if OLD.search(line):
                    hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_model_explorer_overlay_names_the_figure_by_its_definition():
    result: AnalysisResult = make_result([("a", "Conv"), ("b", "Conv")], [30.0, 12.0], [30.0, 11.0])
    label = next(o.label for o in overlays(result) if o.file == "rank_key.json")
    assert EFFECTIVE_SQNR_DEF in label
