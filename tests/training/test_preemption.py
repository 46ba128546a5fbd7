"""The polite stop: which signals raise the flag, and what is left as it was."""

from __future__ import annotations

import os
import signal

from tinypred.training.preemption import StopSignal


def test_sigterm_and_sigint_raise_the_flag_and_the_first_names_the_stop():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with StopSignal() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.caught == signal.SIGINT and stop.describe() == ("SIGINT", 130)
    assert {s: signal.getsignal(s) for s in before} == before  # restored


def test_a_signal_the_process_ignores_stays_ignored():
    # A shell starts a background job with SIGINT ignored: a Ctrl-C meant for the shell must not stop it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopSignal() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert not stop.requested
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
