"""Shared test set-up: a headless matplotlib backend and the hypothesis profiles.

Profiles (each test sets its own small ``max_examples`` to keep the suite fast):
  default  no deadline: CI machines are slow and shared, so timing must not fail a test
  ci       the same, derandomized (same examples every run); chosen when $CI is set or
           with HYPOTHESIS_PROFILE=ci
"""
import os

import matplotlib

matplotlib.use("Agg")          # before anything imports pyplot: no window, no display needed

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
