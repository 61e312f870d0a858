"""The vendor dialects: each vendor's job API served from the same ledger and read models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from api.dialects.huawei import HuaweiTasks
from api.dialects.oracle import create_scheduler_job
from api.dialects.spaceone import SpaceOneJobs
from api.dialects.tencent import tencent_api

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

DIALECT_HANDLERS: Final[list[ControllerRouterHandler]] = [
    SpaceOneJobs,
    HuaweiTasks,
    tencent_api,
    create_scheduler_job,
]
"""The dialects' controllers, for create_app's route handlers."""
