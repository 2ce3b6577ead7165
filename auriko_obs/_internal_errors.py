"""Counting failures inside auriko-obs (never the caller's): ``INTERNAL_ERRORS``, shared by every part.

The instrumentation, the store's exporter and the OTLP export all report here, so that
``auriko_obs.stats()["internal_errors"]`` counts them in one place and each kind is logged once.
"""

from __future__ import annotations

import logging
import math
import os
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


def positive_setting(name: str, default: float, where: str, unit: str = "", *, integer: bool = False) -> float:
    """Returns the environment variable ``name`` as a positive, finite number (in its own ``unit``; a whole
    number when ``integer``), or ``default`` when it is unset; any other value is reported once
    (``<where>.<name>``) and ``default`` used."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError
    except ValueError:
        kind = "a positive whole number" if integer else "a positive number"
        INTERNAL_ERRORS.warn(f"{where}.{name}", f"{name}={text!r} is not {kind}{unit}; using {default:g}.")
        return default
    return value
