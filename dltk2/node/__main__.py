"""``python -m dltk2.node serve|pull --config node.toml``."""

import sys

from dltk2.node.cli import main

sys.exit(main())
