"""The report's layout in a real browser: nothing overflows its card or the page at a laptop (1400 px) and a
phone (390 px) width, no table needs sideways scrolling at the laptop width, with a worst layer named like a real 64-layer CNN's. Runs headless Chromium when it is
installed (``apt-get install chromium``), else skips with that reason.

The report forbids scripts (its Content-Security-Policy); the copy measured here drops that policy and adds one
script that lists every overflow into the page, which ``--dump-dom`` prints. A phone width is reached through an
iframe, because headless Chromium will not make a window that narrow.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

import resources
from workbench.report import ReportData, build_report, render_html
from workbench.session import Session

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium")
LONG = "/features/features.12/block/block.3/conv/conv.2/Conv_output_0_quantized_with_a_long_tail"

MEASURE = """<script>
window.addEventListener('load', () => {
  const out = [], vw = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > vw + 1) out.push('page ' + document.documentElement.scrollWidth);
  document.querySelectorAll('.card, .verdict').forEach((c, i) => {
    const r = c.getBoundingClientRect();
    if (c.scrollWidth > c.clientWidth + 1) out.push('box ' + i + ' ' + c.scrollWidth + '>' + c.clientWidth);
    c.querySelectorAll('*').forEach(e => { const q = e.getBoundingClientRect();
      if (q.right > r.right + 1 || q.left < r.left - 1) out.push('child of ' + i + ': ' + e.textContent.slice(0, 30)); });
  });
  // at a laptop width the layer tables fit without sideways scrolling (their number headers wrap)
  if (vw >= 1000) document.querySelectorAll('.scroll').forEach(d => {
    if (d.scrollWidth > d.clientWidth + 1) out.push('table ' + (d.querySelector('table') || {}).id + ' ' + d.scrollWidth + '>' + d.clientWidth); });
  const p = document.createElement('pre'); p.id = 'layout'; p.textContent = 'LAYOUT ' + vw + ' ' + JSON.stringify(out);
  document.body.appendChild(p);
});
</script>"""

FRAME = """<html><body style="margin:0"><iframe id="f" src="report.html" style="width:{w}px;height:900px;border:0">
</iframe><script>
document.getElementById('f').addEventListener('load', () => setTimeout(() => {{
  const r = document.getElementById('f').contentDocument.getElementById('layout');
  const p = document.createElement('pre'); p.textContent = 'FRAME ' + (r ? r.textContent : 'none');
  document.body.appendChild(p);
}}, 300));
</script></body></html>"""


def _measure(page, width: int) -> tuple[int, list[str]]:
    frame = page.parent / f"frame-{width}.html"
    frame.write_text(FRAME.format(w=width), encoding="utf-8")
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--window-size=1600,1000", "--virtual-time-budget=3000", "--dump-dom", frame.as_uri()],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL).stdout
    m = re.search(r"FRAME LAYOUT (\d+) (.*?)</pre>", out)
    assert m, out[-2000:]
    return int(m.group(1)), json.loads(m.group(2).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&"))


@pytest.fixture(scope="module")
def doc():
    session = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    return build_report(session, samples=50).to_dict()


@pytest.mark.parametrize("width", [1400, 390])
def test_nothing_overflows_at_laptop_and_phone_width(doc, tmp_path, width):
    doc = json.loads(json.dumps(doc))  # a copy: the fixture is shared
    doc["runs"][doc["final_run"]]["summary"]["worst_node"] = LONG
    html = render_html(ReportData.from_dict(doc))
    assert LONG in html
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("</body>", MEASURE + "</body>")
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    seen, overflows = _measure(page, width)
    assert width - 20 <= seen <= width  # the page was laid out at that width (less a scrollbar)
    assert overflows == []
