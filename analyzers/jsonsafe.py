"""Numbers made safe for strict JSON, in one place for analysis results, calibration tables, projects and reports.

JSON has no NaN or infinity (Python's json writes tokens other parsers reject), and numpy scalars are not
JSON types; every public document goes through these two functions.
"""

from __future__ import annotations

import json
import math

import numpy as np


def json_num(x) -> float | None:
    """One number as a JSON-safe float: NaN/inf become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def json_safe(x):
    """``x`` with NaN/inf replaced by None and numpy scalars/arrays by Python values, recursively; other
    values (ints, strings, bools) unchanged."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


MAX_DEPTH = 64  # projects and reports nest about 10 levels; anything far deeper is not one of ours


def loads_bounded(text: str, max_depth: int = MAX_DEPTH):
    """``json.loads`` that refuses documents nested deeper than ``max_depth`` with a ValueError: a 100,000-deep
    array would otherwise end in a RecursionError here or in whatever walks the result."""
    try:
        doc = json.loads(text)
    except RecursionError as e:
        raise ValueError(f"the JSON is nested too deeply (more than {max_depth} levels)") from e
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"the JSON is nested too deeply (more than {max_depth} levels)")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return doc
