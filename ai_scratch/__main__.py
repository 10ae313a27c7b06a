"""``python -m ai_scratch`` is ``ai-scratch``."""

import sys

from ai_scratch.cli import console

sys.exit(console())
