"""Sprout's database: SQLAlchemy 2 models, sessions and Alembic migrations.

Nothing here reads the environment: callers pass URLs explicitly.
"""
