"""``python -m causal_router.cli``: the ``causal-router`` command."""

import sys

from . import main

sys.exit(main())
