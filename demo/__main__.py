"""``python -m demo``: the embedded demo deployment (see :mod:`demo.cli`)."""

from demo.cli import run

run()
