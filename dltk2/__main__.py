"""``python -m dltk2 <application> <stage> [flags]``: see :mod:`dltk2.launcher`."""

import sys

from dltk2.launcher import main

sys.exit(main())
