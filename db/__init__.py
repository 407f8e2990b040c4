"""Persistence: SQLAlchemy 2 models, engine/session factory, repositories, migrations.

Imports nothing from ``api`` or ``sync_engine``.
"""
