"""Shared test set-up: a headless matplotlib backend and the hypothesis profiles.

Each test sets its own small ``max_examples`` to keep the suite fast. Profiles
(choose with HYPOTHESIS_PROFILE=...):
  default  derandomized: the same examples on every run and machine, so `make test`
           and CI never flake; no deadline (shared 2-core machines are slow)
  explore  fresh random examples on every run, for a search on your own machine
           (a failing example is saved in .hypothesis/ and replayed first next time)
"""
import os

import matplotlib

matplotlib.use("Agg")          # before anything imports pyplot: no window, no display needed

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", parent=settings.get_profile("default"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
