"""Root pytest configuration, shared by the library tests (tests/) and nbval (notebooks/).

Set before any kernel starts, so nbval's kernels inherit them: progress bars off (nbval compares
streams) and the quick profile expected (a notebook committed with other parameters fails: the canary).
"""

import os

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("OTLIB_PROFILE", "quick")
