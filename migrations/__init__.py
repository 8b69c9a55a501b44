"""Alembic migrations of the campaign store (shipped in the wheel so `campaign db upgrade` works
from any install)."""
