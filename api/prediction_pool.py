"""The predictions' own worker threads: ``/predict`` and ``/v2`` infer run their model there, never queued behind
uploads or reviews that wait on storage or the database on anyio's shared worker threads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")


def predict_threads(setting: int | None) -> int:
    """How many predictions run at once: ``SPROUT_PREDICT_THREADS``, else one more than the CPUs this process may
    use. With one per CPU, about a tenth of the cores sat idle under load (`bench/serve.py`): a prediction thread
    waits for the GIL each time it hands its result to the event loop or picks up the next request, and the
    spare thread runs its model meanwhile (+20 MB of buffers)."""
    return setting or len(os.sched_getaffinity(0)) + 1


class PredictionPool:
    """``threads`` worker threads named ``sprout-predict-*``, made at start-up.

    A plain executor, not anyio's shared workers behind a capacity limiter: a thread that finishes a prediction
    takes the next queued one at once, where the limiter handed each token back through the event loop first
    (a core idled while the loop, or the GIL it waited for, was busy).
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sprout-predict")

    async def run(self, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)`` on a prediction thread; waits without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        """Stop the threads; predictions still queued are cancelled."""
        self._executor.shutdown(cancel_futures=True)
