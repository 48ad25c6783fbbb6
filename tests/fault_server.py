"""`python app.py ...` with a short stochastic sampler, for the fault suite's flood of maps.

The app's stochastic map takes 600 sequential forwards; here 4 (two resets of 2), so a test can
make hundreds of maps in a minute. The maps keep their size ((h, w) float32 over the region), which
is what the memory budget counts; nothing else of the app changes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convis.app.maps as maps  # noqa: E402
from convis.config import StochasticConfig  # noqa: E402

maps.STOCHASTIC = StochasticConfig(iterations=4, reset_every=2)  # read at call time by the app's handlers

import app  # noqa: E402

app.main(sys.argv[1:])
