"""The in-process tally of guide tasks decided by concurrent SOP batches (bot/sop_inflight.py)."""

from __future__ import annotations

from bot.sop_inflight import InFlight


def test_a_batch_counts_its_own_tasks() -> None:
    tally = InFlight()
    with tally.batch() as batch:
        batch.mark_read()
        batch.give("lin")
        batch.give("lin")
        assert batch.tasks("lin") == 2
        assert batch.tasks("wang") == 0


def test_uncommitted_tasks_of_another_batch_count() -> None:
    tally = InFlight()
    with tally.batch() as first, tally.batch() as second:
        first.mark_read()
        second.mark_read()
        first.give("lin")
        assert second.tasks("lin") == 1
        assert first.tasks("lin") == 1  # its own, not twice


def test_a_commit_after_the_read_still_counts_but_one_before_it_does_not() -> None:
    tally = InFlight()
    with tally.batch() as first:
        first.mark_read()
        first.give("lin")
        with tally.batch() as reader_before:
            reader_before.mark_read()  # reads the stored counts before the commit lands
            tally.committed(first)
            with tally.batch() as reader_after:
                reader_after.mark_read()  # the database shows the commit now
                assert reader_before.tasks("lin") == 1
                assert reader_after.tasks("lin") == 0


def test_a_rolled_back_batch_counts_for_no_one() -> None:
    tally = InFlight()
    with tally.batch() as reader:
        reader.mark_read()
        try:
            with tally.batch() as failed:
                failed.give("lin")
                raise RuntimeError("rollback")
        except RuntimeError:
            pass
        assert reader.tasks("lin") == 0


def test_committed_batches_are_forgotten_once_no_reader_needs_them() -> None:
    tally = InFlight()
    for _ in range(100):
        with tally.batch() as batch:
            batch.mark_read()
            batch.give("lin")
            tally.committed(batch)
    assert tally._batches == []
    with tally.batch() as batch:
        batch.mark_read()
        assert batch.tasks("lin") == 0
