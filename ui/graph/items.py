"""Two scene items draw the whole graph: all edges, and all nodes. No item or widget per node.

With thousands of nodes, one QGraphicsItem each makes the scene index and Python-side bookkeeping the
bottleneck. Here each paint call draws only what intersects the exposed rectangle (found with numpy
on the layout's coordinates), batches boxes by colour, and uses the zoom level to decide how much
detail to draw: plain boxes when zoomed out, op types, then names and badges when close.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from workbench.app.layout import GraphLayout
from workbench.app.names import NameShortener

from ..colors import FLAGGED, NO_DATA, SEARCH, SELECTED

EDGE_BAND = 24  # layers per cached edge path: paint only the bands in view
LOD_TEXT = 0.32
LOD_DETAIL = 0.62
LOD_OVERVIEW = 0.08  # below LOD_TEXT and above this, op types in a small screen-size font where they fit
OVERVIEW_PX = 9  # that font's pixel size: small, still readable


class EdgesItem(QGraphicsItem):
    """Every edge as smooth curves, cached as a few QPainterPaths (bands of layers)."""

    def __init__(self, layout: GraphLayout):
        super().__init__()
        self.setZValue(0)
        self.layout = layout
        self._bands: list[tuple[QRectF, QPainterPath, QPainterPath]] = []
        self._highlight = QPainterPath()
        self._pen = QPen(QColor("#9aa3ad"), 1.2)
        self._pen.setCosmetic(True)
        self._hpen = QPen(SELECTED, 2.4)
        self._hpen.setCosmetic(True)
        self._build()

    def _edge_path(self, pts: np.ndarray, path: QPainterPath) -> None:
        path.moveTo(pts[0, 0], pts[0, 1])
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
            my = (y0 + y1) / 2
            path.cubicTo(x0, my, x1, my, x1, y1)

    def _build(self) -> None:
        lay = self.layout
        groups: dict[int, list[int]] = {}
        for k, (a, _b, _pts) in enumerate(lay.edges):
            groups.setdefault(int(lay.layer[a]) // EDGE_BAND, []).append(k)
        arrow = 6.0
        for _, ks in sorted(groups.items()):
            path, heads = QPainterPath(), QPainterPath()
            for k in ks:
                pts = lay.edges[k][2]
                self._edge_path(pts, path)
                x, y = pts[-1]
                heads.addPolygon(QPolygonF([QPointF(x - arrow * 0.6, y - arrow), QPointF(x + arrow * 0.6, y - arrow),
                                            QPointF(x, y)]))
            self._bands.append((path.boundingRect().adjusted(-4, -8, 4, 4), path, heads))

    def set_highlight(self, edge_ids: list[int]) -> None:
        """Edges drawn on top in the selection colour (those of the selected nodes)."""
        old = self._highlight.boundingRect()
        self._highlight = QPainterPath()
        for k in edge_ids:
            self._edge_path(self.layout.edges[k][2], self._highlight)
        self.update(old.united(self._highlight.boundingRect()).adjusted(-4, -4, 4, 4))

    def boundingRect(self) -> QRectF:
        x0, y0, x1, y1 = self.layout.bounds
        return QRectF(x0 - 20, y0 - 20, x1 - x0 + 40, y1 - y0 + 40)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        exposed = option.exposedRect
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, lod > 0.2)
        painter.setPen(self._pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for rect, path, heads in self._bands:
            if rect.intersects(exposed):
                painter.drawPath(path)
                if lod > LOD_TEXT:
                    painter.setBrush(QBrush(QColor("#9aa3ad")))
                    painter.drawPath(heads)
                    painter.setBrush(Qt.BrushStyle.NoBrush)
        if not self._highlight.isEmpty():
            painter.setPen(self._hpen)
            painter.drawPath(self._highlight)


class NodesItem(QGraphicsItem):
    """Every node box: fill by metric, red frame when flagged, badges for FP32/INT16, selection ring."""

    def __init__(self, layout: GraphLayout, op_types: list[str], subtitles: list[str | None] | None = None,
                 groups: np.ndarray | None = None, shortener: NameShortener | None = None):
        super().__init__()
        self.setZValue(1)
        self.layout = layout
        self.op_types = op_types  # the bold first line: op type, or a block's scope
        self.subtitles = subtitles or [None] * len(layout.names)  # second line when not the (shortened) name
        self.groups = groups if groups is not None else np.zeros(len(layout.names), dtype=bool)
        self.shortener = shortener or NameShortener(layout.names)
        n = len(layout.names)
        hw, hh = layout.node_w / 2, layout.node_h / 2
        self._rects = [QRectF(float(x - hw), float(y - hh), layout.node_w, layout.node_h)
                       for x, y in zip(layout.x, layout.y)]
        self.fill = np.full(n, -1, dtype=np.int64)  # palette index per node, -1 = no data
        self.palette: list[QColor] = []
        self.flagged = np.zeros(n, dtype=bool)
        self.badges: dict[int, str] = {}  # node -> "FP32" / "INT16" (pending edits end with "*")
        self.selected: set[int] = set()
        self.matches: set[int] = set()
        self._font = QFont()
        self._font.setPointSizeF(10.5)
        self._bold = QFont(self._font)
        self._bold.setBold(True)
        self._small = QFont(self._font)
        self._small.setPointSizeF(8.5)
        self._fm = QFontMetricsF(self._font)
        self._tiny = QFont(self._font)
        self._tiny.setPixelSize(OVERVIEW_PX)
        self._tiny.setBold(True)
        self._tiny_fm = QFontMetricsF(self._tiny)
        self._elided: dict[int, str] = {}
        self._titles: dict[int, str] = {}

    # -- state (each setter repaints only what it must) ------------------------------------------
    def set_fill(self, fill: np.ndarray, palette: list[QColor]) -> None:
        self.fill, self.palette = fill, palette
        self.update()

    def set_flags(self, flagged: np.ndarray, badges: dict[int, str]) -> None:
        self.flagged, self.badges = flagged, badges
        self.update()

    def set_selected(self, selected: set[int]) -> None:
        changed = self.selected ^ selected
        self.selected = selected
        for i in changed:
            self.update(self._rects[i].adjusted(-8, -8, 8, 8))

    def set_matches(self, matches: set[int]) -> None:
        changed = self.matches ^ matches
        self.matches = matches
        for i in changed:
            self.update(self._rects[i].adjusted(-8, -8, 8, 8))

    def rect(self, i: int) -> QRectF:
        return self._rects[i]

    def boundingRect(self) -> QRectF:
        x0, y0, x1, y1 = self.layout.bounds
        return QRectF(x0 - 10, y0 - 10, x1 - x0 + 20, y1 - y0 + 20)

    # -- painting ------------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        r = option.exposedRect
        vis = self.layout.in_rect(r.left(), r.top(), r.right(), r.bottom())
        if vis.size == 0:
            return
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, lod > 0.2)
        outline = QPen(QColor("#5f6b78"), 1.0)
        outline.setCosmetic(True)
        painter.setPen(outline if lod > 0.12 else Qt.PenStyle.NoPen)
        blocks = vis[self.groups[vis]]
        if blocks.size:  # a block reads as a stack of boxes
            painter.setBrush(QBrush(QColor("#c9ced6")))
            for i in blocks:
                painter.drawRoundedRect(self._rects[i].translated(5, 5), 6, 6)
        fills = self.fill[vis]
        for key in np.unique(fills):
            painter.setBrush(QBrush(NO_DATA if key < 0 else self.palette[key]))
            rects = [self._rects[i] for i in vis[fills == key]]
            if lod > 0.2:
                for rc in rects:
                    painter.drawRoundedRect(rc, 6, 6)
            else:
                painter.drawRects(rects)
        self._paint_flags(painter, vis, lod)
        if lod > LOD_TEXT:
            self._paint_text(painter, vis, lod)
        elif lod > LOD_OVERVIEW:
            self._paint_overview_text(painter, vis)
        self._paint_rings(painter, vis)

    def _paint_flags(self, painter: QPainter, vis: np.ndarray, lod: float) -> None:
        flagged = vis[self.flagged[vis]]
        if flagged.size:
            pen = QPen(FLAGGED, 3.2 if lod > 0.2 else 2.0)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for i in flagged:
                painter.drawRoundedRect(self._rects[i].adjusted(-3, -3, 3, 3), 8, 8)

    def _paint_text(self, painter: QPainter, vis: np.ndarray, lod: float) -> None:
        painter.setPen(QColor("#101418"))
        for i in vis:
            rc = self._rects[i]
            if lod > LOD_DETAIL:
                painter.setFont(self._bold)
                painter.drawText(rc.adjusted(6, 3, -6, -rc.height() / 2), Qt.AlignmentFlag.AlignCenter,
                                 self._title(int(i), rc.width() - 12))
                painter.setFont(self._small)
                painter.drawText(rc.adjusted(6, rc.height() / 2 - 2, -6, -3), Qt.AlignmentFlag.AlignCenter,
                                 self.subtitles[i] or self._elide(int(i), rc.width() - 12))
            else:
                painter.setFont(self._bold)
                painter.drawText(rc, Qt.AlignmentFlag.AlignCenter, self._title(int(i), rc.width() - 12))
            badge = self.badges.get(int(i))
            if badge:
                self._paint_badge(painter, rc, badge)

    def overview_label(self, i: int, box_w: float, box_h: float) -> str | None:
        """What a box ``box_w`` x ``box_h`` screen pixels wide shows zoomed out (Fit on a long model): its op type
        (a block's scope), cut at the end when most of it fits, else nothing (the tooltip tells it on hover)."""
        if box_h < 0.75 * self._tiny_fm.height() or box_w < 16:  # letters may touch the frame, not cross it
            return None
        text = self.op_types[i]
        room = box_w - 4
        if self._tiny_fm.horizontalAdvance(text) <= room:
            return text
        cut = self._tiny_fm.elidedText(text, Qt.TextElideMode.ElideRight, room)
        return cut if len(cut.rstrip("…")) >= 3 else None

    def _paint_overview_text(self, painter: QPainter, vis: np.ndarray) -> None:
        """Op types drawn in screen pixels (a font scaled with the zoom would be unreadable) where they fit."""
        t = painter.worldTransform()
        painter.save()
        painter.resetTransform()
        painter.setFont(self._tiny)
        painter.setPen(QColor("#101418"))
        for i in vis:
            dev = t.mapRect(self._rects[i])
            text = self.overview_label(int(i), dev.width(), dev.height())
            if text:
                painter.drawText(dev, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def _paint_badge(self, painter: QPainter, rc: QRectF, text: str) -> None:
        painter.save()
        painter.setFont(self._small)
        w = QFontMetricsF(self._small).horizontalAdvance(text) + 10
        b = QRectF(rc.right() - w + 6, rc.top() - 9, w, 16)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#2b3a4a") if not text.endswith("*") else QColor("#b35c00"))
        painter.drawRoundedRect(b, 5, 5)
        painter.setPen(QColor("white"))
        painter.drawText(b, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def _title(self, i: int, width: float) -> str:
        """The bold line (op type, block scope) cut at the end with '…' when wider than the box, never clipped
        at both sides (``LayerNormalization`` in a 160-unit box)."""
        s = self._titles.get(i)
        if s is None:
            s = QFontMetricsF(self._bold).elidedText(self.op_types[i], Qt.TextElideMode.ElideRight, width)
            self._titles[i] = s
        return s

    def _elide(self, i: int, width: float) -> str:
        s = self._elided.get(i)
        if s is None:
            fm = QFontMetricsF(self._small)
            s = self.shortener.fit(self.layout.names[i], lambda t: fm.horizontalAdvance(t) <= width)
            self._elided[i] = s
        return s

    def _paint_rings(self, painter: QPainter, vis: np.ndarray) -> None:
        vset = set(int(i) for i in vis)
        for idxs, color, width in ((self.matches, SEARCH, 3.0), (self.selected, SELECTED, 3.5)):
            todo = [i for i in idxs if i in vset]
            if not todo:
                continue
            pen = QPen(color, width)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for i in todo:
                painter.drawRoundedRect(self._rects[i].adjusted(-6, -6, 6, 6), 10, 10)

