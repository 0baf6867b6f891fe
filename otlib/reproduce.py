"""``python -m otlib.reproduce``: run the notebooks (see :mod:`otlib.report.reproduce`)."""

import sys

from otlib.report.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
