"""``python -m ai_scratch`` is ``ai-scratch``."""

from ai_scratch.cli import main

main()
