import sys

from turboalchemy._cli import main

sys.exit(main())
