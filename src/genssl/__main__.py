"""``python -m genssl``: the same as the ``genssl`` command."""

import sys

from genssl.cli import main

if __name__ == "__main__":
    sys.exit(main())
