"""``python -m noether_sym.cli``: the same as the ``noether-sym`` command."""

import sys

from ._main import main

sys.exit(main())
