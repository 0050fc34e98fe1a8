"""The analyzer's native fold, a C extension; pyproject.toml holds the rest of the build.

It is optional: where no C compiler is found the install goes on, and the analyzer reads
through DuckDB alone (analysis/native.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "openfrp.analysis._fold",
            ["src/openfrp/analysis/fold.c", "src/openfrp/analysis/fold_line.c"],
            depends=["src/openfrp/analysis/fold_line.h"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
