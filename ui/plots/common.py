"""Shared pyqtgraph setup: light theme for readable screenshots, and small helpers used by every plot."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel

from workbench.app.names import NameShortener
from workbench.app.workspace import table_layers

from ..colors import SQNR_STOPS

pg.setConfigOptions(antialias=True, background="w", foreground="#222222", imageAxisOrder="row-major")

DISPLAY_MAX_DB = 80.0  # perfect layers (infinite SQNR) are drawn at this height
ISO_COLOR = "#1f77b4"
CUM_COLOR = "#ff7f0e"


def sqnr_colormap() -> pg.ColorMap:
    """The SQNR scale of ``ui.colors`` as a pyqtgraph ColorMap (for the heatmap)."""
    pos = [p for p, _ in SQNR_STOPS]
    cols = [pg.mkColor(c) for _, c in SQNR_STOPS]
    return pg.ColorMap(pos, cols)


def finite_for_display(v, top: float = DISPLAY_MAX_DB) -> np.ndarray:
    """Values ready to plot: +inf drawn at ``top``, None/NaN kept as NaN (gaps)."""
    a = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
    a[np.isposinf(a)] = top
    a[np.isneginf(a)] = -top
    return a


_shortener: list = [None, None, NameShortener(())]  # the graph and run it was made for, and the shortener


def short_name(ws, node: str) -> str:
    """``node`` as the Layers table shortens it (the prefix every layer shares dropped): plot titles and notes show
    this, with the full name in their tooltip."""
    g, run = ws.graph, ws.current_run
    if _shortener[0] is not g or _shortener[1] is not run:
        names = [n.name for n in table_layers(g)] if g is not None else []
        names += [lay.node for lay in run.result.layers] if run is not None else []
        _shortener[:] = [g, run, NameShortener(names)]
    return _shortener[2].short(node)


def plot_widget(left: str, bottom: str) -> pg.PlotWidget:
    w = pg.PlotWidget()
    w.setLabel("left", left)
    w.setLabel("bottom", bottom)
    w.showGrid(x=True, y=True, alpha=0.25)
    w.setMenuEnabled(False)
    return w


def key_html(items: list[tuple[str, str, str]]) -> str:
    """A one-line legend for under a plot: (colour, style 'line' | 'dash' | 'ring', label) per entry."""
    marks = {"line": "━━", "dash": "╍╍", "ring": "◯"}
    return "&nbsp;&nbsp;&nbsp;".join(f"<span style='color:{c}; font-weight:bold'>{marks[st]}</span>&nbsp;{text}"
                                     for c, st, text in items)


def hint_label(text: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setStyleSheet("color:#5f6b78; padding:2px 6px;")
    lab.setWordWrap(True)
    return lab


def _delete_menu_tree(menu) -> None:
    for a in menu.actions():
        sub = a.menu()
        if sub is not None and sub is not menu:
            _delete_menu_tree(sub)
    menu.deleteLater()


def release_plot_menus(root) -> None:
    """Delete the context menus pyqtgraph creates without a parent for every plot under ``root``.

    They are top-level QMenus that outlive their plots (and show up as leaked windows); the main window
    calls this when it closes.
    """
    for view in root.findChildren(pg.GraphicsView):
        scene = view.scene()
        if scene is None:
            continue
        for item in scene.items():
            if isinstance(item, pg.PlotItem) and getattr(item, "ctrlMenu", None) is not None:
                _delete_menu_tree(item.ctrlMenu)
                item.ctrlMenu = None
            if isinstance(item, pg.ViewBox) and getattr(item, "menu", None) is not None:
                _delete_menu_tree(item.menu)
                item.menu = None
