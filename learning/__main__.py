"""``python -m learning``: the learning core's command line (no Django needed)."""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

from learning.core.cli import main  # noqa: E402

sys.exit(main())
