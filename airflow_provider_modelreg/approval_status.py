"""The statuses a wait reads and decides, in a module of their own: the PAI approval status, and the outcome and
decision types every decision core (:mod:`~airflow_provider_modelreg.approval`,
:mod:`~airflow_provider_modelreg.fabric_wait`) builds on. The cores and the argument checks that DAG files run need
them without importing the pydantic models of :mod:`airflow_provider_modelreg.models` (which re-exports
:class:`ApprovalStatus`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ApprovalStatus", "WaitDecision", "WaitOutcome"]


class ApprovalStatus(str, enum.Enum):
    """PAI approval status of a model version. ``Approved`` and ``Rejected`` are terminal."""

    PENDING = "Pending"
    APPROVED = "Approved"
    REJECTED = "Rejected"

    def is_terminal(self) -> bool:
        """True when the status can no longer change."""
        return self is not ApprovalStatus.PENDING

    @classmethod
    def parse(cls, value: str) -> ApprovalStatus:
        """Case-insensitive lookup (the PAI SDK docs also spell them ``APPROVED``/``PENDING``)."""
        for member in cls:
            if member.value.lower() == value.strip().lower():
                return member
        raise ValueError(f"unknown approval status {value!r}; expected one of Pending, Approved, Rejected")


class WaitOutcome(str, enum.Enum):
    """The base of a decision core's outcomes: a member ``WAITING = "waiting"``, and the core's terminal ones."""

    def is_terminal(self) -> bool:
        """True when the wait is over."""
        return self is not type(self)("waiting")


OutcomeT = TypeVar("OutcomeT", bound=WaitOutcome)
VersionT = TypeVar("VersionT")


@dataclass(frozen=True)
class WaitDecision(Generic[OutcomeT, VersionT]):
    """What one poll decided. ``outlook`` says in words what was seen (for logs; changes only when it does)."""

    outcome: OutcomeT
    version: VersionT | None = None
    outlook: str = ""
