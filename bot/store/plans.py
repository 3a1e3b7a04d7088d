"""The director's plans (``plans`` table) and the issues filed for their tasks (``plan_tasks``)."""

from __future__ import annotations

from bot.store.base import StoreBase


class PlanRows(StoreBase):
    """Plans: requested, planned, filed, approved, completed (``bot/director/service.py``)."""


class PlanTaskRows(StoreBase):
    """Each plan task's filed issue and whether it is linked (``bot/director/filing.py``)."""
