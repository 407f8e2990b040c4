"""The composition root: the one place that builds the process (settings, engine, queue,
event bus, provider adapters, services) and starts it as a command.

``runtime`` opens a process's ``Runtime``; ``wiring`` calls every service constructor;
``asgi`` builds the API around a runtime; ``worker`` is the supervised arq worker;
``cli`` is the ``emailsync`` command; ``devtools`` is ``emailsync dev`` (sandbox, seed).
Nothing in ``api``, ``sync_engine`` or ``db`` imports this package (import-linter).
"""
