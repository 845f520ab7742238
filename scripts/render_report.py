#!/usr/bin/env python3
"""Build the demo report (and a before/after one) and screenshot them in headless Chromium.

    python scripts/render_report.py [--out docs/screenshots] [--html-dir DIR] [--keep-full]

Writes <out>/report-laptop.png (1280 px wide), report-phone.png (390 px), compare-laptop.png and
compare-phone.png, cropped to the page's first screens and saved as optimised PNGs. Needs a
``chromium`` binary (Debian: apt-get install chromium); the pages load nothing from the network, and
Chromium is started with its own network features turned off as well.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {"laptop": (1280, 5200), "phone": (390, 9000)}
CROP = {"laptop": 3400, "phone": 4200}  # keep this many CSS pixels from the top
FIX = """version = 1
[layers."cat"]
precision = "fp32"
[layers."fc2.Gemm"]
precision = "int16"
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    sys.exit("no chromium binary found (Debian: apt-get install -y chromium)")


def screenshot(html: Path, png: Path, width: int, height: int, scale: float = 1.0) -> None:
    """One headless Chromium screenshot of ``html`` at ``width`` x ``height`` CSS pixels."""
    with tempfile.TemporaryDirectory(prefix="qwb-chromium-") as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--force-device-scale-factor={scale}", f"--user-data-dir={profile}",
               f"--screenshot={png}", f"--window-size={width},{height}", html.resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def optimise(png: Path, keep_px: int, max_width: int = 1280) -> None:
    """Crop to the top ``keep_px`` pixels, trim the blank bottom, shrink, and quantise to 96 colours."""
    from PIL import Image, ImageChops  # noqa: PLC0415

    im = Image.open(png).convert("RGB")
    im = im.crop((0, 0, im.width, min(im.height, keep_px)))
    bg = Image.new("RGB", im.size, im.getpixel((im.width - 1, im.height - 1)))
    box = ImageChops.difference(im, bg).getbbox()
    if box:
        im = im.crop((0, 0, im.width, min(im.height, box[3] + 16)))
    if im.width > max_width:
        im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
    im.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(png, optimize=True)


def build(html_dir: Path) -> dict[str, Path]:
    """Write the demo report and a before/after report (default recipe vs FP32 Concat + INT16 classifier,
    benchmarked on the CPU when the benchmarking engine is installed)."""
    import resources  # noqa: PLC0415
    from workbench.recipe import Recipe  # noqa: PLC0415
    from workbench.report import build_report, write_report  # noqa: PLC0415
    from workbench.session import Session  # noqa: PLC0415

    session = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    fix_path = html_dir / "fix.toml"
    fix_path.write_text(FIX, encoding="utf-8")
    demo = build_report(session, command=["qwb", "report", "--demo", "-o", "report.html"])
    bench = ["cpu"]
    compare = build_report(session, compare_recipe=Recipe.load(fix_path), compare_source="fix.toml", bench=bench,
                           command=["qwb", "report", "--demo", "--compare", "fix.toml"]
                           + (["--bench", "cpu"] if bench else []) + ["-o", "compare.html"])
    return {"report": write_report(demo, html_dir / "report.html")[0],
            "compare": write_report(compare, html_dir / "compare.html")[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="folder for the PNGs")
    ap.add_argument("--html-dir", help="keep the HTML reports here (default: a temporary folder)")
    ap.add_argument("--keep-full", action="store_true", help="do not crop or quantise the PNGs")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qwb-report-") as td:
        html_dir = Path(args.html_dir) if args.html_dir else Path(td)
        html_dir.mkdir(parents=True, exist_ok=True)
        pages = build(html_dir)
        for name, html in pages.items():
            for size, (w, h) in SIZES.items():
                png = out / f"{name}-{size}.png"
                screenshot(html, png, w, h, 1.0)
                if not args.keep_full:
                    optimise(png, CROP[size])
                print(f"wrote {png} ({png.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
