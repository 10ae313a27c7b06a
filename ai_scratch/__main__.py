"""``python -m ai_scratch`` is ``ai-scratch``."""

import sys

from ai_scratch.entry import console

sys.exit(console())
