"""Coding-agent adapters: one interface (``base``), one module per CLI, the registry that
picks one by kind (``registry``).

Deliberately empty: an agent process (the demo agent, a test's fake) imports one module of
this package, and an ``__init__`` that imported every adapter would cost each of them the
configuration models and the sandbox too.
"""
