"""The graph canvas: pan by dragging, zoom with the wheel, click to select, hover for details.

It holds a scene with the two items of ``items.py`` and translates mouse actions into node indices;
it knows nothing about the workspace (the panel wires it up).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QFrame, QGraphicsScene, QGraphicsView, QToolTip

from workbench.app.layout import GraphLayout

from .items import EdgesItem, NodesItem

MIN_SCALE, MAX_SCALE = 0.002, 4.0
READABLE_SCALE = 0.7  # zooming to a node goes at least this close (names readable)
OVERVIEW_SCALE = 0.33  # a fit at least this close still shows op types (items.LOD_TEXT): open with the whole graph


class GraphView(QGraphicsView):
    """Draws a GraphLayout; emits node indices on click, and asks for tooltips on hover."""

    sigNodeClicked = Signal(int, bool)  # node index, additive (Ctrl/Shift held)
    sigNodeDoubleClicked = Signal(int)
    sigBackgroundClicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(QColor("#fbfbfc"))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.scene().setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.layout_: GraphLayout | None = None
        self.nodes: NodesItem | None = None
        self.edges: EdgesItem | None = None
        self.tooltip_for = None  # callable(index) -> str, set by the panel
        self.reserve = (0, 0)  # (width, height) px of the top-left corner kept clear by fit (an overlay; none now)
        self._press: QPoint | None = None

    def set_layout(self, layout: GraphLayout | None, op_types: list[str] | None = None,
                   subtitles: list[str | None] | None = None, groups: np.ndarray | None = None,
                   shortener=None) -> None:
        """Replace the drawing (None clears it); see ``NodesItem`` for the labels."""
        self.scene().clear()
        self.layout_, self.nodes, self.edges = layout, None, None
        if layout is None:
            return
        self.edges = EdgesItem(layout)
        self.nodes = NodesItem(layout, op_types or [""] * len(layout.names), subtitles, groups, shortener)
        self.scene().addItem(self.edges)
        self.scene().addItem(self.nodes)
        x0, y0, x1, y1 = layout.bounds
        m = 200 + max(x1 - x0, y1 - y0) / 2  # room to keep the graph clear of the legend at any zoom
        self.scene().setSceneRect(QRectF(x0 - m, y0 - m, x1 - x0 + 2 * m, y1 - y0 + 2 * m))

    # -- navigation -------------------------------------------------------------------------------------
    @property
    def scale_factor(self) -> float:
        return self.transform().m11()

    def zoom(self, factor: float) -> None:
        s = self.scale_factor
        factor = min(max(s * factor, MIN_SCALE), MAX_SCALE) / s
        self.scale(factor, factor)

    def fit(self) -> None:
        """The whole graph in view, beside or below the legend in the top-left corner (``reserve``), whichever
        leaves it larger."""
        if self.layout_ is None:
            return
        x0, y0, x1, y1 = self.layout_.bounds
        w, h = x1 - x0 + 40, y1 - y0 + 40
        vw, vh = max(self.viewport().width(), 1), max(self.viewport().height(), 1)
        rw, rh = self.reserve
        beside = min((vw - rw) / w, vh / h) if vw > rw + 50 else 0.0
        below = min(vw / w, (vh - rh) / h) if vh > rh + 50 else 0.0
        s = min(max(beside, below, MIN_SCALE), MAX_SCALE)
        dx, dy = (rw, 0) if beside >= below else (0, rh)
        self.resetTransform()
        self.scale(s, s)
        # the graph's centre goes to the centre of the free part of the viewport
        self.centerOn((x0 + x1) / 2 - dx / (2 * s), (y0 + y1) / 2 - dy / (2 * s))

    def fit_nodes(self, idx) -> None:
        """The boxes ``idx`` in view (zoomed in no closer than reading distance)."""
        if self.layout_ is None or len(idx) == 0:
            return
        idx = np.asarray(list(idx), dtype=np.int64)
        hw, hh = self.layout_.node_w / 2, self.layout_.node_h / 2
        x0, x1 = float(self.layout_.x[idx].min() - hw), float(self.layout_.x[idx].max() + hw)
        y0, y1 = float(self.layout_.y[idx].min() - hh), float(self.layout_.y[idx].max() + hh)
        self.fitInView(QRectF(x0 - 40, y0 - 40, x1 - x0 + 80, y1 - y0 + 80), Qt.AspectRatioMode.KeepAspectRatio)
        if self.scale_factor > 1.0:
            self.resetTransform()
            self.centerOn((x0 + x1) / 2, (y0 + y1) / 2)

    def show_default(self) -> None:
        """Fit when op types stay readable, else readable zoom at the graph's inputs."""
        if self.layout_ is None:
            return
        self.fit()
        if self.scale_factor < OVERVIEW_SCALE:
            self.resetTransform()
            self.scale(READABLE_SCALE, READABLE_SCALE)
            x0, y0, x1, _ = self.layout_.bounds
            vh = self.viewport().height() / READABLE_SCALE
            top_nodes = np.nonzero(self.layout_.y <= y0 + vh)[0]
            cx = float(np.mean(self.layout_.x[top_nodes])) if top_nodes.size else (x0 + x1) / 2
            self.centerOn(cx, y0 - 20 + vh / 2)

    def center_on_node(self, i: int, zoom_in: bool = False) -> None:
        """Centre box ``i``; ``zoom_in``: first zoom to reading distance when the labels are too small."""
        if self.layout_ is None:
            return
        if zoom_in and self.scale_factor < READABLE_SCALE:
            self.resetTransform()
        self.centerOn(float(self.layout_.x[i]), float(self.layout_.y[i]))

    def node_visible(self, i: int) -> bool:
        if self.layout_ is None:
            return False
        r = self.mapToScene(self.viewport().rect()).boundingRect()
        return r.contains(float(self.layout_.x[i]), float(self.layout_.y[i]))

    # -- mouse --------------------------------------------------------------------------------------------
    def wheelEvent(self, event):
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.2 ** steps)
        event.accept()

    def _node_at(self, pos: QPoint) -> int | None:
        if self.layout_ is None:
            return None
        p = self.mapToScene(pos)
        return self.layout_.node_at(p.x(), p.y())

    def mousePressEvent(self, event):
        self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event):
        super().mouseReleaseEvent(event)
        if self._press is None or event.button() != Qt.MouseButton.LeftButton:
            return
        moved = (event.position().toPoint() - self._press).manhattanLength()
        self._press = None
        if moved > 4:
            return  # that was a pan
        i = self._node_at(event.position().toPoint())
        additive = bool(event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier))
        if i is None:
            self.sigBackgroundClicked.emit()
        else:
            self.sigNodeClicked.emit(i, additive)

    def mouseDoubleClickEvent(self, event):
        i = self._node_at(event.position().toPoint())
        if i is not None:
            self.sigNodeDoubleClicked.emit(i)
        else:
            super().mouseDoubleClickEvent(event)

    def viewportEvent(self, event):
        if event.type() == QEvent.Type.ToolTip and self.tooltip_for is not None:
            i = self._node_at(event.pos())
            if i is not None:
                QToolTip.showText(event.globalPos(), self.tooltip_for(i), self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)
