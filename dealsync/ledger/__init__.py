"""The ledger: what dealsync knows between runs (links, bases, cursors, audit, quarantine)."""

from dealsync.ledger.repo import Ledger, LedgerUnavailable

__all__ = ["Ledger", "LedgerUnavailable"]
