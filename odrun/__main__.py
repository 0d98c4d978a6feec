"""``python -m odrun`` and the ``odrun`` console script.

``odrun --version`` alone is answered here, before the CLI (click, about 40 ms) is
imported: its cost is the interpreter's own start-up. Everything else, ``--version``
with other arguments included, goes to :func:`odrun.cli.main` (without trio: see
``main``).

When the command is done, the garbage collector is frozen (``gc.freeze``): the
interpreter's exit collects garbage several times, each walking every object still on the
heap (0.1-0.2 s of a fetch process); frozen objects are skipped. Nothing else changes at
exit: atexit handlers run, streams are flushed, modules are torn down, every object still
referenced is freed as before. Only garbage cycles left at that moment are not finalized,
and odrun leaves no open file or temporary file to one (they are closed by ``with``
blocks before a command returns; Python never promised to finalize them at exit).
Only here, in a process that is about to end: :func:`odrun.cli.main` called from a
library user's process (or the tests) never freezes anything.
"""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from ._version import __version__  # noqa: PLC0415 - the fast path imports nothing else

        try:
            sys.stdout.write(f"odrun, version {__version__}\n")  # click's version_option text
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away: nothing else to say (as the CLI)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return
    # odrun's HTTP clients are synchronous; httpcore imports trio (about 0.1 s) when it
    # is installed, for async clients only. This process never runs one.
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
    from .cli import main as cli_main  # noqa: PLC0415 - not for --version alone

    try:
        cli_main()
    finally:
        if "XRootD.client.finalize" in sys.modules:  # every XRootD file was odrun's
            from .transfer.xrootd import finish_process  # noqa: PLC0415 - loaded already

            finish_process()
        gc.freeze()  # the process ends now: its final collections skip today's heap


if __name__ == "__main__":
    main()
