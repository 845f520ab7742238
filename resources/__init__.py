"""Files that ship with Quant Workbench: the demo model and data, style sheets, report templates."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEMO_DIR = ROOT / "demo"
DEMO_MODEL = DEMO_DIR / "digits_cnn.onnx"
DEMO_CALIB = DEMO_DIR / "calib.npz"
DEMO_EVAL = DEMO_DIR / "eval.npz"
