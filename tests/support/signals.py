"""Ctrl-C for the processes a run starts."""

from __future__ import annotations

import signal


def restore_ctrl_c() -> None:
    """A shell that starts a run in the background without job control (`pytest &` in a
    script, `nohup`) leaves SIGINT ignored, and an ignored signal stays ignored across exec:
    every crewline process the run starts would then ignore the Ctrl-C it is sent and run
    into a timeout. A handler (unlike SIG_IGN) is reset by exec, so the children get the
    default Ctrl-C again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
