"""Foundations every layer may use: errors, simulation time, seeded random streams, table reading, result folders.

Layers, bottom to top (a module imports only from its own layer or below):
``core`` → ``model`` → ``plots`` → ``fitting`` → ``sim`` → ``analysis`` → ``report``/``cli``.
"""
