"""``python -m genssl``: the same as the ``genssl`` command."""

import sys

from genssl.cli import main

sys.exit(main())
