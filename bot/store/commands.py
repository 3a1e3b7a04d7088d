"""Comment commands acted on (``commands`` table): each comment id once, and pauses."""

from __future__ import annotations

from bot.store.base import StoreBase


class CommandRows(StoreBase):
    """``bot/commands.py``: a command comment is taken once (an edit is not a new command)."""
