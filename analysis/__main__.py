"""``python -m analysis``: see :mod:`analysis.cli`."""

import os
import sys

# The matrix products here are small (at most a few hundred rows times the cases). With several
# BLAS threads on a busy 2-core machine they spin and contend: measured 0.5 s instead of 5 ms for
# the 50 readers x 10000 cases jackknife. One thread unless the caller's environment says more;
# this must happen before numpy is first imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from analysis.cli import main  # noqa: E402 - after the thread settings above

sys.exit(main())
