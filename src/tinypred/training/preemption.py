"""A polite stop on SIGTERM: what Slurm sends before it preempts or times out a job, what torchrun
forwards to its workers when it is stopped, and what `kill` sends by default.

While `train` runs, SIGTERM only raises a flag; the training loop reads it after each step (under DDP
inside the step's one all_reduce, so that every rank stops after the same step), writes a checkpoint
there and raises `errors.Stopped` (the CLI exits 143): `tinypred train ... --resume` continues from that
very step and ends with the weights the uninterrupted run would have had. A second SIGTERM while the
first is being honoured (or one outside the main thread's reach) is left to the default: the process
dies at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class StopSignal:
    """Context manager: SIGTERM sets `requested` instead of ending the process (main thread only: signal
    handlers cannot be installed elsewhere, and there the flag simply never rises)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]
