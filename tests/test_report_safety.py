"""A model whose names, doc strings and metadata carry markup and odd unicode cannot run anything in a report.

The model is built here with onnx.helper; its hostile strings go through every section (a recipe keeps a
hostile-named layer in float, so the recipe, the fix exports and the before/after show them too).
"""

from __future__ import annotations

import ast
import json
import re
import shlex

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.models import OPSET, save, save_npz
from tests.report_util import EXTERNAL_URL, Page
from workbench.recipe import Recipe
from workbench.report import build_report, render_html, render_json, render_markdown
from workbench.report.markup import Markup, clean, el, esc
from workbench.report.style import CSS
from workbench.session import Session

SCRIPT = "<script>alert(1)</script>"
ATTR = "\"'><img src=x onerror=alert(2)>|`|"  # breaks attributes, Markdown tables and code spans
STYLE = "</style><script>alert(3)</script>"
JS = "javascript:alert(4)"
BIDI = "gnp.\u202eexe"  # right-to-left override
ODD = "名前\u200b🙂e\u0301\x07"  # CJK, zero-width space, emoji, combining accent, BEL
HOSTILE_NODES = {"conv1": SCRIPT, "conv2": ATTR, "fc": STYLE, "relu1": JS, "relu2": BIDI, "gap": ODD}


def hostile_model():
    rng = np.random.default_rng(0)
    c = 4
    w1 = (rng.standard_normal((c, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((c, c, 3, 3)) * 0.2).astype(np.float32)
    wf = (rng.standard_normal((10, c)) * 0.3).astype(np.float32)
    n = HOSTILE_NODES
    t = {"c1": SCRIPT + "_out", "r1": JS + "_out", "c2": STYLE + "_out"}  # hostile tensor names as well
    nodes = [
        helper.make_node("Conv", ["x", "w1"], [t["c1"]], name=n["conv1"], pads=[1, 1, 1, 1], doc_string=SCRIPT),
        helper.make_node("Relu", [t["c1"]], [t["r1"]], name=n["relu1"]),
        helper.make_node("Conv", [t["r1"], "w2"], [t["c2"]], name=n["conv2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", [t["c2"]], ["r2"], name=n["relu2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name=n["gap"]),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf"], ["y"], name=n["fc"], transB=1),
    ]
    graph = helper.make_graph(nodes, SCRIPT, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                               numpy_helper.from_array(wf, "wf")], doc_string=STYLE + BIDI)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=SCRIPT,
                              producer_version=JS, doc_string=SCRIPT + ATTR + STYLE + ODD, domain=ATTR)
    model.ir_version = 8
    helper.set_model_props(model, {SCRIPT: ATTR, "link": JS, "style": STYLE, "bidi": BIDI, "url": "https://x.test/a.js"})
    return model


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    model = save(hostile_model(), d / "m.onnx")
    rng = np.random.default_rng(1)
    data = save_npz(d / "d.npz", x=rng.standard_normal((24, 3, 8, 8)).astype(np.float32),
                    labels=rng.integers(0, 10, 24).astype(np.int64))
    fix = Recipe()
    fix.set_precision(SCRIPT, "fp32")
    fix.set_precision(STYLE, "int16")
    fix.set_percentile(ATTR, 99.9)
    s = Session(model, data)
    report = build_report(s, compare_recipe=fix, compare_source=str(d / f"{SCRIPT}.toml"), title=f"{SCRIPT} {BIDI}",
                          command=["qwb", "report", str(model), "--calib", str(data), "--compare", SCRIPT])
    return report, render_html(report)


def test_no_script_handler_or_javascript_url_in_the_page(hostile):
    _, html = hostile
    page = Page(html)
    assert [t for t, _ in page.tags if t in ("script", "img", "iframe", "object", "embed", "link", "base", "form")] == []
    for tag, attrs in page.tags:
        for k, v in attrs.items():
            assert not k.lower().startswith("on"), (tag, k)
            assert k.lower() not in ("style", "srcdoc", "formaction"), (tag, k)
            if k.lower() in ("href", "src", "xlink:href", "action"):
                assert v.strip().lower().startswith(("#", "data:text/plain", "data:application/json")), (tag, v[:60])
                assert not EXTERNAL_URL.match(v)
    assert len(page.styles) == 1 and page.styles[0] == CSS  # </style> in a name cannot end or add a style sheet
    assert "https://x.test" not in "".join(a.get("href", "") + a.get("src", "") for _, a in page.tags)


def test_hostile_strings_appear_as_text(hostile):
    _, html = hostile
    text = Page(html).all_text
    for s in (SCRIPT, ATTR, STYLE, JS):
        assert s in text  # shown to the reader, literally, as text
    assert "gnp.\\u202eexe" in text and "\u202e" not in html  # the RTL override is made visible, not obeyed
    assert "名前\\u200b🙂e\u0301\\u0007" in text  # invisible and control characters made visible
    assert html.count("<script") == 0 and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_json_keeps_the_strings_exactly(hostile):
    report, _ = hostile
    doc = json.loads(render_json(report))
    nodes = {lay["node"] for lay in doc["runs"][0]["analysis"]["layers"]}
    assert {SCRIPT, ATTR, STYLE} <= nodes
    assert doc["model"]["metadata"][SCRIPT] == ATTR and doc["model"]["producer"] == SCRIPT
    assert doc["reproduce"]["argv"][-1] == SCRIPT


def test_markdown_cannot_open_html_or_links(hostile):
    """Rendered as CommonMark with raw HTML allowed (as on a code forge), the names stay text."""
    markdown_it = pytest.importorskip("markdown_it")
    report, _ = hostile
    md = render_markdown(report)
    assert "\u202e" not in md
    out = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    page = Page(out)
    assert {t for t, _ in page.tags} <= {"h3", "p", "strong", "code", "em", "table", "thead", "tbody", "tr", "th",
                                          "td", "pre", "ul", "li", "br"}
    assert all(not k.startswith("on") for _, a in page.tags for k in a)
    assert SCRIPT in page.all_text and STYLE in page.all_text and ATTR in page.all_text
    # a name holding | cannot add table cells: every rendered row of a table has its header's cell count
    for tbl in re.findall(r"<table>.*?</table>", out, re.S):
        cells = [len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", tbl, re.S)]
        assert len(set(cells)) == 1, cells
    assert out.count("<table>") >= 2


def test_exports_keep_hostile_names_as_literals(hostile):
    report, _ = hostile
    ex = report.runs[1].exclusions
    ort = json.loads(ex.formats["ort"])
    assert ort["nodes_to_exclude"] == [SCRIPT]
    assert set(ort["extra_options"]["TensorQuantOverrides"]) >= {"f", "y", "wf"}  # the INT16 Gemm's tensors
    tree = ast.parse(ex.formats["nncf"])  # still valid Python
    names = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and n.targets[0].id == "ignored_names")
    assert names == [SCRIPT, STYLE]
    tree = ast.parse(ex.formats["tflite"])
    deny = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                and n.targets[0].id == "denylisted_nodes")
    assert deny == [SCRIPT + "_out", JS + "_out", "y"]  # the Conv, its fused Relu, the Gemm
    args = shlex.split(ex.formats["polygraphy"], comments=True)
    assert args[args.index("--layer-precisions") + 1:] == [f"{SCRIPT}:float32", f"{STYLE}:float16"]


def test_markup_refuses_what_could_run():
    with pytest.raises(ValueError):
        el("script", None, "x")
    with pytest.raises(ValueError):
        el("a", {"onclick": "x"})
    with pytest.raises(ValueError):
        el("a", {"onMouseOver": "x"})
    with pytest.raises(ValueError):
        el("a", {"href": " javascript:alert(1)"})
    with pytest.raises(ValueError):
        el("a", {"href": "https://example.com/"})
    with pytest.raises(ValueError):
        el("div", {"style": "background:url(x)"})
    assert el("p", {"title": ATTR}, SCRIPT) == ("<p title=\"&quot;&#x27;&gt;&lt;img src=x onerror=alert(2)&gt;|`|\">"
                                                "&lt;script&gt;alert(1)&lt;/script&gt;</p>")
    assert esc(Markup("<b>ok</b>")) == "<b>ok</b>" and esc("<b>") == "&lt;b&gt;"
    assert clean("a\u202eb\x00c\ud800") == "a\\u202eb\\u0000c\\ud800"
    assert clean("tab\tnew\nline ünïcødé 🙂") == "tab\tnew\nline ünïcødé 🙂"
