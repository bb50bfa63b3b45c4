"""Guide tasks decided by this process's SOP batches that the database may not show yet.

A guide's daily task budget is checked against the tasks stored in sop_log plus the batch's own.
When one process runs several batches at once (`sop.workers` loops, so that one batch's database
round trips overlap the next one's decisions), a batch must also count what the others decided:
while they are uncommitted, and after their commit too if this batch read the stored counts
before that commit could be seen. A batch whose commit lands while another is reading is counted
by the reader as well: the budget may then hold a task back a day early, but is never exceeded by
this process. (Replicas each keep their own tally; across them the budget is best effort.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(eq=False)
class Batch:
    """One batch's guide tasks, and where it stands against the others."""

    tally: InFlight
    read_at: int = 0  # commits the process had finished when this batch read the stored counts
    committed_at: int | None = None  # the process's commit count once this batch's commit finished
    given: dict[str, int] = field(default_factory=dict)

    def mark_read(self) -> None:
        """Call just before reading the stored counts."""
        self.read_at = self.tally.commits

    def give(self, guide: str) -> None:
        """This batch gave `guide` one more task."""
        self.given[guide] = self.given.get(guide, 0) + 1

    def tasks(self, guide: str) -> int:
        """Tasks for `guide` this batch and the other batches add to her stored count."""
        return self.given.get(guide, 0) + self.tally.others(self, guide)


class InFlight:
    """The live and recently committed batches of one process."""

    def __init__(self) -> None:
        self.commits = 0
        self._batches: list[Batch] = []

    @contextlib.contextmanager
    def batch(self) -> Iterator[Batch]:
        """A batch for the duration of its transaction; call `committed()` after the commit."""
        batch = Batch(self, read_at=self.commits)
        self._batches.append(batch)
        try:
            yield batch
        finally:
            if batch.committed_at is None:  # rolled back: its tasks never happened
                self._batches.remove(batch)
            self._prune()

    def committed(self, batch: Batch) -> None:
        """`batch` is durable: readers from now on see its tasks in the database."""
        self.commits += 1
        batch.committed_at = self.commits

    def others(self, reader: Batch, guide: str) -> int:
        """Tasks for `guide` from batches `reader` may not have seen in the stored counts."""
        return sum(
            b.given.get(guide, 0)
            for b in self._batches
            if b is not reader and (b.committed_at is None or b.committed_at > reader.read_at)
        )

    def _prune(self) -> None:
        live = [b.read_at for b in self._batches if b.committed_at is None]
        oldest = min(live, default=self.commits)
        self._batches = [b for b in self._batches if b.committed_at is None or b.committed_at > oldest]
