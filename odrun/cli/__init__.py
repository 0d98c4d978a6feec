"""The ``odrun`` command line: parse, call one library function, render.

Layers inside the package, lowest first (tests/test_architecture.py enforces them):
``_common`` (shared options and helpers) < the command modules (``records``, ``data``,
``run``, ``reana``, ``env``, ``appliance``, ``doctor``) < ``_group`` (the command table,
lazy loading, :func:`main`) < this ``__init__``. A command module never imports the group or
this package; the group names each command in ``LAZY_COMMANDS`` and imports its module only
when the command runs, so ``odrun --version`` loads click and :mod:`odrun.errors` only.
"""

from __future__ import annotations

from odrun.cli._group import LAZY_COMMANDS, cli, load_command, main

__all__ = ["LAZY_COMMANDS", "cli", "load_command", "main"]
