"""`python -m bench.downtime`: see bench/downtime/__init__.py."""

import sys

from bench.downtime.run import main

sys.exit(main())
