"""The vendor dialects: each vendor's job API served from the same ledger and read models."""

from __future__ import annotations

from api.dialects.spaceone import SpaceOneJobs

DIALECT_HANDLERS = [SpaceOneJobs]
"""The dialects' controllers, for create_app's route handlers."""
