import sys

from sew.cli import main

sys.exit(main())
