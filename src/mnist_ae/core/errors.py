"""One exception type for mistakes a user can fix, and the wrapper that turns it into a clean exit.

A user who passes a bad param or a corrupt file needs one line that names the problem and the fix,
not a traceback; a bug in our code still gets its full traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

# No space left, or the user's disk quota reached: torch.save, matplotlib and plain writes all raise
# an OSError with one of these (torch's with its own RuntimeError chained to it).
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class UserError(Exception):
    """A problem with the user's input (params, data files, device) rather than with our code."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message: torch's load errors run to a page of advice."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main`` and exit 2 on a ``UserError`` or a full disk, 130 on Ctrl-C, without a
    traceback. (The atomic writes name the output a full disk stopped; this catches the rest.)"""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        print(f"error: the disk is full ({error.strerror}{f': {error.filename}' if error.filename else ''}); "
              f"free some space and rerun", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output of this stage was kept", file=sys.stderr)
        sys.exit(130)
