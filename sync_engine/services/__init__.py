"""Use cases the API and the jobs call, one class per concern.

Each class is a frozen dataclass of the collaborators it uses (``collaborators.py``):
a session factory, the ``Jobs`` seam, an event publisher, ``Mailboxes``, a clock, and
other services. Methods take the sub-account they are scoped to; SQL stays in
``db.repositories``. ``facades.Services`` is the set one process holds.
"""
