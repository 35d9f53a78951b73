"""Corpus jobs on several cores: one helper for ``data synth``, ``data label`` and ``data check-corpus``."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def unordered_map(
    work: Callable[[Job], Result], jobs: Sequence[Job], workers: int, chunksize: int = 1
) -> Iterator[Result]:
    """``work(job)`` for every job, yielded as each finishes: here for one worker or one job, else in a pool.

    ``work`` must be a module-level function (the pool pickles it). The pool's processes are spawned, not
    forked: each builds its own engine (eSpeak, the pocketsphinx decoder) instead of a forked copy of an
    initialised one, which is not safe, and none inherits the parent's torch threads half-initialised. The
    pool is closed and joined, so workers exit normally (eSpeak's remove their private data folders then).
    """
    if workers <= 1 or len(jobs) <= 1:
        yield from map(work, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap_unordered(work, jobs, chunksize)
        pool.close()
        pool.join()
