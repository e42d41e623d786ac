"""Count a benchmark's warnings instead of silencing them.

The runs behind the published tables must show what the library warns about (overlap, routing,
convergence): each run records its warnings with ``warnings.catch_warnings(record=True)`` and
``simplefilter("always")``, so none is lost to the once-per-location default, and the script
prints the count by category and message at the end. Worker processes return their counts with
their results (:meth:`WarningCounts.as_records`), and the parent adds them up
(:meth:`WarningCounts.update`).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections import Counter

#: Characters of a warning's first line kept as its message in the table.
MESSAGE_CHARS = 160


class WarningCounts:
    """Warnings counted by (category, first line of the message)."""

    def __init__(self):
        self.counts: Counter = Counter()

    @contextlib.contextmanager
    def record(self):
        """Record every warning raised inside the block (each occurrence counted), then count them."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield self
        for w in caught:
            message = str(w.message).strip().splitlines()[0] if str(w.message).strip() else ""
            self.counts[(w.category.__name__, message[:MESSAGE_CHARS])] += 1

    def as_records(self) -> list[tuple[str, str, int]]:
        """(category, message, count) triples: picklable, to return from a worker process."""
        return [(c, m, n) for (c, m), n in self.counts.items()]

    def update(self, records) -> None:
        """Add (category, message, count) triples from :meth:`as_records`."""
        for c, m, n in records:
            self.counts[(c, m)] += n

    def report(self, file=None) -> None:
        """Print the total and the count of each (category, message), most frequent first."""
        file = sys.stdout if file is None else file
        total = sum(self.counts.values())
        print(f"warnings during the run: {total}" + ("" if total else " (none)"), file=file)
        for (category, message), n in self.counts.most_common():
            print(f"  {n:7d}  {category}: {message}", file=file)
