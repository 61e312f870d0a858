"""The ledger's errors: each carries the values a client needs and states them."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class ConfigurationError(LedgerError):
    """The service's configuration is unusable."""


class JobNotFound(LedgerError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} not found")


class JobGone(LedgerError):
    """The job was deleted; its history is kept but it takes no more reads or writes."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was deleted")


class JobAlreadyExists(LedgerError):
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} already exists")


class InvalidTransition(LedgerError):
    def __init__(self, job_id: str, status: str, action: str, reason: str = "") -> None:
        self.job_id = job_id
        self.status = status
        self.action = action
        detail = f"cannot {action} job {job_id}: status is {status}"
        super().__init__(f"{detail} ({reason})" if reason else detail)


class InvalidCommand(LedgerError):
    """A command's values break a rule the domain checks (a field and a reason)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class VersionConflict(LedgerError):
    def __init__(self, job_id: str, expected: int, actual: int) -> None:
        self.job_id = job_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"job {job_id} is at version {actual}, not {expected}")


class IdempotencyKeyReused(LedgerError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"Idempotency-Key {key!r} was already used with a different method, path or body"
        )
