"""Persistence: SQLAlchemy 2 models, engine/session factory, repositories, migrations.

Imports nothing from ``emailsync``, ``api`` or ``sync_engine``.
"""
