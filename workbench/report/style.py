"""The report's one style sheet, inlined into every HTML report (no fonts or files from anywhere).

Laptop and phone widths (tables scroll sideways inside their box, charts scale by viewBox), a dark
scheme when the reader's system asks for one, and print rules: white paper, no navigation, figures and
table rows kept whole.
"""

CSS = r"""
:root{--fg:#1f2328;--muted:#59636e;--bg:#fff;--panel:#f6f8fa;--line:#d1d9e0;--accent:#0969da;
--bad:#cf222e;--good:#1a7f37;--warn:#9a6700;--iso:#2563eb;--cum:#ea580c;--before:#8c959f;--after:#8250df;
--int8:#0969da;--fp32:#8c959f;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--panel:#151b23;
--line:#3d444d;--accent:#4493f8;--bad:#f85149;--good:#3fb950;--warn:#d29922;--iso:#6ea8fe;--cum:#fb923c;
--before:#9198a1;--after:#b392f0;--int8:#4493f8;--fp32:#9198a1}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;font-variant-numeric:tabular-nums}
main{max-width:1120px;margin:0 auto;padding:0 20px 48px}
header.top{max-width:1120px;margin:0 auto;padding:24px 20px 8px}
h1{font-size:1.55rem;margin:0 0 4px;line-height:1.25;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:0 0 10px;padding-top:6px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:1rem;margin:16px 0 6px;overflow-wrap:anywhere}
p{margin:6px 0}
.muted,.sub{color:var(--muted)}
.sub{font-size:.9rem}
section{margin:28px 0}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.86em}
code{overflow-wrap:anywhere}
pre{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px 12px;overflow-x:auto;
white-space:pre-wrap;overflow-wrap:anywhere;margin:6px 0}
nav.toc{max-width:1120px;margin:0 auto;padding:4px 20px 0;display:flex;flex-wrap:wrap;gap:6px}
nav.toc a{font-size:.85rem;color:var(--accent);text-decoration:none;border:1px solid var(--line);border-radius:99px;
padding:2px 10px;white-space:nowrap}
a{color:var(--accent)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:14px 0}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 12px;min-width:0}
.card .k{font-size:.8rem;color:var(--muted)}
.card .v{font-size:1.35rem;font-weight:600;line-height:1.3;overflow-wrap:anywhere}
.card .d{font-size:.85rem;overflow-wrap:anywhere}
.verdict{border-left:4px solid var(--accent);background:var(--panel);padding:8px 12px;border-radius:0 6px 6px 0}
.verdict.bad{border-color:var(--bad)}.verdict.good{border-color:var(--good)}.verdict.warn{border-color:var(--warn)}
.verdict p{margin:0}.verdict ul{margin:4px 0 0;padding-left:18px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:8px 0}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--panel);font-weight:600;white-space:nowrap}
td.n,th.n{text-align:right;white-space:nowrap}
th.n{white-space:normal;min-width:4.5em}
td.name{overflow-wrap:anywhere;max-width:24em}
tr.flagged td:first-child{box-shadow:inset 3px 0 0 var(--bad)}
tr.changed td:first-child{box-shadow:inset 3px 0 0 var(--after)}
.tag{display:inline-block;font-size:.75rem;border-radius:99px;padding:0 7px;border:1px solid var(--line);
white-space:nowrap;margin-right:4px}
.tag.bad{color:var(--bad);border-color:var(--bad)}.tag.good{color:var(--good);border-color:var(--good)}
.tag.p-fp32{color:var(--warn);border-color:var(--warn)}.tag.p-int16{color:var(--after);border-color:var(--after)}
.up{color:var(--good)}.down{color:var(--bad)}
.lat .up{color:var(--bad)}.lat .down{color:var(--good)}
ul.hints{margin:4px 0 0;padding-left:18px}
ul.hints li{margin:2px 0}
.hint-try{color:var(--muted)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
.chips{display:flex;flex-wrap:wrap;gap:6px}
.chip{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:1px 8px;font-size:.85rem}
figure{margin:10px 0;break-inside:avoid}
figcaption{font-size:.85rem;color:var(--muted)}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:8px 20px}
.grid2>*{min-width:0}
td.name{min-width:12em}
tr.hint-row td{border-top:0;padding-top:0}
.compact table{font-size:.8rem}.compact th,.compact td{padding:3px 5px}.compact td.name{min-width:0}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:.85rem;color:var(--muted);margin:4px 0}
.key{display:inline-flex;align-items:center;gap:6px}
.sw{display:inline-block;width:20px;height:0;border-top:3px solid var(--muted)}
.sw.dashed{border-top-style:dashed}
.sw.s-iso{border-color:var(--iso)}.sw.s-cum{border-color:var(--cum)}.sw.s-before{border-color:var(--before)}
.sw.s-after{border-color:var(--after)}.sw.flag{width:12px;height:12px;border:2px solid var(--bad);border-radius:50%}
svg.chart{width:100%;height:auto;display:block;overflow:visible}
svg.bars-h{max-width:760px}svg.scatter{max-width:820px}
.wide{overflow-x:auto;-webkit-overflow-scrolling:touch}.wide svg.chart{min-width:640px}
svg .grid{stroke:var(--line);stroke-width:1}
svg .axis{stroke:var(--muted);stroke-width:1}
svg .tick{font-size:11px;fill:var(--muted)}
svg .axis-label{font-size:12px;fill:var(--muted)}
svg .line{fill:none;stroke-width:2;stroke-linejoin:round}
svg .line.dashed{stroke-width:2.5}
svg .dashed{stroke-dasharray:6 4}
svg .s-iso{stroke:var(--iso);fill:var(--iso)}svg .s-cum{stroke:var(--cum);fill:var(--cum)}
svg .s-before{stroke:var(--before);fill:var(--before)}svg .s-after{stroke:var(--after);fill:var(--after)}
svg polyline.line{fill:none}
svg .flag-ring{fill:none;stroke:var(--bad);stroke-width:2}
svg .bars{fill:var(--muted);opacity:.75}
svg .clipped{fill:var(--bad);opacity:.09}
svg .range{stroke-width:1.6}
svg .range.r0{stroke:var(--accent)}svg .range.r1{stroke:var(--after);stroke-dasharray:5 3}
svg .range-label{font-size:11px}
svg .range-label.r0{fill:var(--accent)}svg .range-label.r1{fill:var(--after)}
svg .pt.met{fill:var(--good);stroke:var(--fg);stroke-width:.6}
svg .pt.missed{fill:var(--bad);stroke:var(--fg);stroke-width:.6}
svg .pt.alt{fill:none;stroke:var(--muted);stroke-width:1.2}svg .link{stroke:var(--line);stroke-width:1.2}
svg .front{stroke:var(--accent);stroke-width:1.6}svg .chosen-ring{fill:none;stroke:var(--cum);stroke-width:2.5}
svg .target-line{stroke:var(--after);stroke-width:1.4;stroke-dasharray:6 4}svg .range-label.target{fill:var(--after)}
.sw.s-front{border-color:var(--accent)}.sw.s-target{border-color:var(--after);border-top-style:dashed}
.sw.dot-met,.sw.dot-missed,.sw.dot-alt,.sw.ring-chosen{width:10px;height:10px;border:0;border-radius:50%}
.sw.dot-met{background:var(--good)}.sw.dot-missed{background:var(--bad)}.sw.dot-alt{border:1.5px solid var(--muted)}
.sw.ring-chosen{border:2.5px solid var(--cum)}
svg .bar.fp32{fill:var(--fp32)}svg .bar.int8{fill:var(--int8)}svg .bar.after{fill:var(--after)}
.dl{font-size:.85rem}
footer{max-width:1120px;margin:0 auto;padding:16px 20px 32px;color:var(--muted);font-size:.85rem;
border-top:1px solid var(--line)}
@media (max-width:640px){
 body{font-size:14px}main,header.top,nav.toc,footer{padding-left:12px;padding-right:12px}
 h1{font-size:1.25rem}.cards{grid-template-columns:repeat(2,minmax(0,1fr))}.card .v{font-size:1.1rem}
 .grid2{grid-template-columns:minmax(0,1fr)}td.name{min-width:9em}
 nav.toc{flex-wrap:nowrap;overflow-x:auto;padding-bottom:4px}dl.kv{grid-template-columns:1fr}dl.kv dt{margin-top:6px}
 th,td{padding:4px 6px}
}
@media print{
 :root{--fg:#000;--muted:#444;--bg:#fff;--panel:#f4f4f4;--line:#bbb}
 body{font-size:10.5pt}nav.toc,.dl{display:none}main,header.top,footer{max-width:none;padding:0}
 section{margin:14pt 0}h2{break-after:avoid}tr,figure,.card,pre{break-inside:avoid}
 .scroll,.wide{overflow:visible}.wide svg.chart{min-width:0}pre{white-space:pre-wrap}a{color:inherit;text-decoration:none}
 @page{margin:14mm}
}
"""
