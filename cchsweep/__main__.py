import sys

from cchsweep.cli import main

sys.exit(main())
