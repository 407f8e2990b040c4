"""The domain: sync rules, services, provider adapters, jobs and events.

``rules/`` are pure functions (no I/O). ``services/`` are small classes, one per use
case, built by the composition root (``emailsync.wiring``) with the collaborators they
use; they hold no SQL (``db.repositories``) and reach the queue only through
``job_queue.Jobs``. ``providers/`` are the mailbox adapters behind one interface.
``jobs.py`` holds the job functions both queues run. Imports nothing from ``api`` or
``emailsync``.
"""
