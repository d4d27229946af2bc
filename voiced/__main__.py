import signal
import sys

# SIGTERM while Python imports voiced (seconds on a busy machine): a clean exit, not a kill.
# cmd_run installs the same handler again, then the daemon's own.
signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))

from .cli import main  # noqa: E402 - after the handler, so the import is covered

sys.exit(main())
