"""The workflow state machine as data: pure, no I/O, imports nothing of ours."""
