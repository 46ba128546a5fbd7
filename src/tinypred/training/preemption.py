"""A polite stop on SIGTERM (what Slurm sends before it preempts or times out a job, what torchrun
forwards to its workers when it is stopped, what `kill` sends by default) and on Ctrl-C (SIGINT).

While `train` runs, either signal only raises a flag; the training loop reads it after each step (under
DDP inside the step's one all_reduce, so that every rank stops after the same step), writes a checkpoint
there and raises `errors.Stopped` (the CLI exits 128 + the signal's number: 143, or 130 for Ctrl-C):
`tinypred train ... --resume` continues from that very step and ends with the weights the uninterrupted
run would have had. The same signal again while the first is being honoured (or one outside the main
thread's reach) is left to the default: the process dies at once, as a second Ctrl-C should.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignal:
    """Context manager: SIGTERM or SIGINT sets `caught` (its number) instead of ending the process (main
    thread only: signal handlers cannot be installed elsewhere, and there the flag simply never rises)."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.caught is not None

    def describe(self) -> tuple[str, int]:
        """What stopped the run, and the exit code to report it with: the signal this process caught, or
        (under DDP, when another process alone caught one) SIGTERM's code."""
        if self.caught is None:
            return "a signal to another process", 128 + signal.SIGTERM
        return signal.Signals(self.caught).name, 128 + self.caught

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            # A signal this process was started ignoring (SIGINT for a shell's background job) stays so.
            self._previous = {
                s: signal.signal(s, self._handle)
                for s in SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN
            }
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.caught = self.caught or signum  # the first one names the stop
        # The same signal again ends the process (torchrun's SIGTERM after a terminal's Ctrl-C does not)
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)  # type: ignore[arg-type]
