"""The colour legend under the graph: the metric's scale and what frames and badges mean."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QWidget

from ..colors import FLAGGED, NO_DATA, ColorScale


class LegendWidget(QWidget):
    """A strip under the canvas (never over a node, at any zoom): the metric's name, its gradient bar with end
    labels, then the flag / no-data / FP32 keys; the keys wrap to a second row when the panel is narrow."""

    ROW = 40  # height of one row (px at scale 1)
    SCALE_W = 270  # the title and bar part
    KEY_W = 132  # one key: swatch and its words

    def __init__(self, parent=None):
        super().__init__(parent)
        self.scale: ColorScale | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setMinimumWidth(self.SCALE_W + 20)
        self.setFixedHeight(self.ROW + 2)

    def set_scale(self, scale: ColorScale) -> None:
        self.scale = scale
        self.update()

    def keys_width(self) -> int:
        return 4 * self.KEY_W

    def resizeEvent(self, event):
        super().resizeEvent(event)
        one_row = self.width() >= self.SCALE_W + self.keys_width() + 20
        self.setFixedHeight(self.ROW + 2 if one_row else 2 * self.ROW + 2)

    def paintEvent(self, event):
        if self.scale is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(QColor("#dde1e6")))
        p.drawLine(0, 0, self.width(), 0)
        f = QFont(self.font())
        f.setBold(True)
        p.setFont(f)
        p.setPen(QColor("#1d232a"))
        p.drawText(QRectF(10, 3, self.SCALE_W - 10, 16), Qt.AlignmentFlag.AlignLeft, self.scale.label)
        p.setFont(self.font())
        bar = QRectF(10, 20, 96, 12)
        g = QLinearGradient(bar.left(), 0, bar.right(), 0)
        pal = self.scale.palette()
        for i, c in enumerate(pal):
            g.setColorAt(i / (len(pal) - 1), c)
        p.setBrush(g)
        p.setPen(QPen(QColor("#8a939e")))
        p.drawRect(bar)
        p.setPen(QColor("#1d232a"))
        lo, hi = self.scale.lo, self.scale.hi
        default = ("worse", "better") if self.scale.higher_is_better else ("causes", "carries")
        worse, better = self.scale.ends or default
        hi_text = f"≥ {hi:g} ({better})" if self.scale.higher_is_better else f"{hi:g} ({better})"
        small = QFont(self.font())
        small.setPointSizeF(max(self.font().pointSizeF() * 0.9, 7.0))
        p.setFont(small)
        p.drawText(QRectF(112, 17, self.SCALE_W - 112, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   f"{lo:g} ({worse}) … {hi_text}")
        p.setFont(self.font())
        one_row = self.height() <= self.ROW + 2
        x, y = (self.SCALE_W + 10, 12) if one_row else (10, self.ROW + 12)
        self._key(p, x, y, NO_DATA, QColor("#5f6b78"), 1, "not analysed")
        self._key(p, x + self.KEY_W, y, QColor("white"), FLAGGED, 3, "flagged layer")
        x += 2 * self.KEY_W
        for text, colour, note in (("FP32", "#2b3a4a", "override"), ("FP32*", "#b35c00", "not run yet")):
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(colour))
            p.drawRoundedRect(QRectF(x, y + 1, 40, 15), 4, 4)
            p.setPen(QColor("white"))
            p.drawText(QRectF(x, y + 1, 40, 15), Qt.AlignmentFlag.AlignCenter, text)
            p.setPen(QColor("#1d232a"))
            p.drawText(QRectF(x + 46, y - 1, self.KEY_W - 48, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, note)
            x += self.KEY_W
        p.end()

    @staticmethod
    def _key(p: QPainter, x: float, y: float, fill: QColor, frame: QColor, width: float, text: str) -> None:
        p.setBrush(fill)
        p.setPen(QPen(frame, width))
        p.drawRoundedRect(QRectF(x + 1, y + 1, 30, 14), 4, 4)
        p.setPen(QColor("#1d232a"))
        p.drawText(QRectF(x + 38, y - 1, 90, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
