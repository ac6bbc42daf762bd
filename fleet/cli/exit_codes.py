"""The exit codes of every command line of the platform (`telemetry …`, the bridge, the simulator
and the edge agent): one table, so a script or a supervisor can tell the cases apart.

=====  ==============  ============================================================================
code   name            meaning
=====  ==============  ============================================================================
0      OK              the command did what was asked (an empty answer is an answer)
1      ERROR           it ran and failed: a runtime error, an unknown vehicle, a refused login
2      USAGE           bad arguments or configuration (argparse's own code for a bad flag)
3      UNAVAILABLE     a server or infrastructure it needs is not running or not reachable
4      CHECK_FAILED    a check, validation or benchmark limit ran and failed (a mismatch, a bad payload)
130    INTERRUPTED     stopped by Ctrl-C (SIGINT), the shell's 128 + 2
=====  ==============  ============================================================================
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    UNAVAILABLE = 3
    CHECK_FAILED = 4
    INTERRUPTED = 130
