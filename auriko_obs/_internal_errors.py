"""Counting failures inside auriko-obs (never the caller's): ``INTERNAL_ERRORS``, shared by every part.

The instrumentation, the store's exporter and the OTLP export all report here, so that
``auriko_obs.stats()["internal_errors"]`` counts them in one place and each kind is logged once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

log = logging.getLogger("auriko_obs")


class InternalErrors:
    """Counts failures inside auriko_obs (never the caller's), and logs the first of each kind once."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, where: str) -> bool:
        """Returns True the first time ``where`` is counted."""
        with self._lock:
            self.counts[where] += 1
            return self.counts[where] == 1

    def record(self, where: str, exc: BaseException) -> None:
        try:
            if self._count(where):
                log.warning(
                    "auriko_obs: internal error in %s (the call itself is unaffected; "
                    "further errors here are counted, not logged)",
                    where,
                    exc_info=exc,
                )
        except Exception:  # logging itself failed: nothing more we can safely do
            pass

    def warn(self, where: str, message: str) -> None:
        """Counts a problem with a plain explanation (a setting that cannot be used).

        The first of each kind is logged, without a traceback.
        """
        try:
            if self._count(where):
                log.warning("auriko_obs: %s", message)
        except Exception:
            pass

    def total(self) -> int:
        return sum(self.counts.values())


INTERNAL_ERRORS = InternalErrors()
