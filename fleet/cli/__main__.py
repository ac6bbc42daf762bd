"""`python -m fleet.cli …` = `telemetry …` (for a process started without the venv's scripts on PATH)."""

import sys

from fleet.cli.app import main

sys.exit(main())
