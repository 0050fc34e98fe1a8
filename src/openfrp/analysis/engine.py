"""DuckDB's engine alone, without the relation and expression builders `import duckdb` loads.

The analyzer sends SQL text and fetches rows, which the engine's own module does: the package's
Python layer on top cost 0.08-0.11 s of every run, a tenth of a run after 1 % growth at 10 M
events. So queries run with `execute` (`sql` is the layer's, absent without it)."""

from _duckdb import DuckDBPyConnection, Error, InterruptException, connect

__all__ = ["DuckDBPyConnection", "Error", "InterruptException", "connect"]
