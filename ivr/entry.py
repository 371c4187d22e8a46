"""The ``ivr`` console command: it imports the command line (Lightning, torch, transformers: seconds) inside a
handler, so that Ctrl-C while they load ends with one line, as it does once a command runs."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from ivr.cli import main as run
    except KeyboardInterrupt:
        print("\nivr: interrupted while starting; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    main()
