"""One exception type for mistakes a user can fix, and the wrapper that turns it into a clean exit.

A user who passes a bad param or a corrupt file needs one line that names the problem and the fix,
not a traceback; a bug in our code still gets its full traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input (params, data files, device) rather than with our code."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message: torch's load errors run to a page of advice."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's ``main`` and exit 2 on a ``UserError``, 130 on Ctrl-C, without a traceback."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output of this stage was kept", file=sys.stderr)
        sys.exit(130)
