"""fastrnn's version, in one place: the package (fastrnn.__version__) and
setup.py (which reads this file without importing fastrnn) take it from here."""

__version__ = "0.1.0"
