"""The PAI approval status, in a module of its own: the decision cores and the argument checks that DAG files run
need it, without importing the pydantic models of :mod:`airflow_provider_modelreg.models` (which re-exports it)."""

from __future__ import annotations

import enum

__all__ = ["ApprovalStatus"]


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
