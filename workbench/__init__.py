"""Quant Workbench core: everything the GUI does, without Qt, so it can be scripted and tested headless."""

__version__ = "0.1.0"
