"""pyqtgraph plots: SQNR along depth, tensor histogram with clip lines, scatter, heatmap, latency."""
