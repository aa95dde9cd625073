"""Build the optional compiled readers; everything else is in pyproject.toml.

The extension is optional: where no C compiler is available the build goes on without
it and kwire runs its generated Python readers, which pass the same tests.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kwire.protocol.messages._speedups",
            sources=["kwire/protocol/messages/_speedups.c"],
            # -O1: the generated C is large; -O2 builds several times slower for a few percent.
            extra_compile_args=["-O1"],
            optional=True,
        )
    ]
)
