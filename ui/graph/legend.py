"""The colour legend over the graph: the metric's scale and what frames and badges mean."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QWidget

from ..colors import FLAGGED, NO_DATA, ColorScale


class LegendWidget(QWidget):
    """A small translucent card: gradient bar with end labels, then the flag / no-data / FP32 keys."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.scale: ColorScale | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFixedSize(250, 112)

    def set_scale(self, scale: ColorScale) -> None:
        self.scale = scale
        self.update()

    def paintEvent(self, event):
        if self.scale is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(QColor("#c9ced6")))
        p.setBrush(QColor(255, 255, 255, 235))
        p.drawRoundedRect(QRectF(0.5, 0.5, self.width() - 1, self.height() - 1), 6, 6)
        f = QFont(self.font())
        f.setBold(True)
        p.setFont(f)
        p.setPen(QColor("#1d232a"))
        p.drawText(QRectF(10, 6, self.width() - 20, 18), Qt.AlignmentFlag.AlignLeft, self.scale.label)
        p.setFont(self.font())
        bar = QRectF(10, 28, self.width() - 20, 12)
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
        p.drawText(QRectF(10, 42, 110, 16), Qt.AlignmentFlag.AlignLeft, f"{lo:g} ({worse})")
        p.drawText(QRectF(self.width() - 130, 42, 120, 16), Qt.AlignmentFlag.AlignRight,
                   f"≥ {hi:g} ({better})" if self.scale.higher_is_better else f"{hi:g} ({better})")
        y = 64
        self._key(p, 10, y, NO_DATA, QColor("#5f6b78"), 1, "not analysed")
        self._key(p, 130, y, QColor("white"), FLAGGED, 3, "flagged layer")
        y += 22
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#2b3a4a"))
        p.drawRoundedRect(QRectF(10, y, 34, 15), 4, 4)
        p.setPen(QColor("white"))
        p.drawText(QRectF(10, y, 34, 15), Qt.AlignmentFlag.AlignCenter, "FP32")
        p.setPen(QColor("#1d232a"))
        p.drawText(QRectF(50, y - 1, 80, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "override")
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#b35c00"))
        p.drawRoundedRect(QRectF(130, y, 40, 15), 4, 4)
        p.setPen(QColor("white"))
        p.drawText(QRectF(130, y, 40, 15), Qt.AlignmentFlag.AlignCenter, "FP32*")
        p.setPen(QColor("#1d232a"))
        p.drawText(QRectF(176, y - 1, 70, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "not run yet")
        p.end()

    @staticmethod
    def _key(p: QPainter, x: float, y: float, fill: QColor, frame: QColor, width: float, text: str) -> None:
        p.setBrush(fill)
        p.setPen(QPen(frame, width))
        p.drawRoundedRect(QRectF(x + 1, y + 1, 30, 14), 4, 4)
        p.setPen(QColor("#1d232a"))
        p.drawText(QRectF(x + 38, y - 1, 90, 18), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
