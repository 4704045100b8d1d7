"""``python -m openai_ws``: the command line (see :mod:`openai_ws.cli`).

It only runs :func:`openai_ws.cli.main` and exits with its code; it must never
do anything else on import.
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
