"""Railyard's trainer: turns a resolved training spec into a fitted, evaluated, stored model.

It never imports Django: it talks to the world through the spec, the data sources, the
artifact store, its exit code and its log.
"""

__version__ = "0.1.0"
