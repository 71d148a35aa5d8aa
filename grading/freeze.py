"""The forkserver's last preload: ``gc.freeze()`` (issue 18).

A learner's process is forked from the forkserver and shares its memory page by page until it
writes to a page (copy on write). Python's cyclic garbage collector writes to every object it
examines; the child's first full collection examined every object the forkserver had imported
(nbgrader, nbconvert, SQLAlchemy, numpy, the warm-up's caches) and so copied most of their pages:
about 0.1 CPU-s per learner, measured with ``benchmarks/bench_grading.py``. ``gc.freeze()`` moves
everything alive now into a generation the collector never examines; what the learner's process
allocates itself is collected as before.
"""
import gc

gc.freeze()
