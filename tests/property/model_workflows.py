"""The workflow parts of the main store model (tests/property/test_store_model.py): batches as
the model keeps them, and the one relaxation of its queue order that workflows need.

A parent's children are read from a Redis set (SMEMBERS) and a cascade can settle several
batches, so the jobs one call releases or creates at the back of a queue come in an order no
contract fixes. The model pushes them in an order of its own and marks them loose; after the
call, settled_order takes Redis's order for them only where everything else is exactly as
modelled (see its docstring).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from workstream.common.batches import LIVE_STATUSES
from workstream.common.keys import WAKE
from workstream.common.states import JobStatus

CALLBACKS = ("on_complete", "on_success")


@dataclass
class ModelBatch:
    id: str
    state: str  # open | sealed | settled
    # Each callback asked for: (its job id, its queue), chosen when the batch was created.
    callbacks: dict[str, tuple[str, str]]
    members: list[str] = field(default_factory=list)  # in the order they joined
    counted: dict[str, JobStatus] = field(default_factory=dict)  # first ending of each member
    spawned: list[str] = field(default_factory=list)  # the callbacks created, in that order

    def settles(self) -> bool:
        """_batches.lua batch_settle_if_done: sealed, and every member counted."""
        return self.state == "sealed" and len(self.counted) == len(self.members)

    def owed(self) -> list[str]:
        """The callbacks its settling creates: on_complete always, on_success only when every
        member completed (an empty batch: vacuously)."""
        all_completed = all(s == JobStatus.COMPLETED for s in self.counted.values())
        return [
            which
            for which in CALLBACKS
            if which in self.callbacks and (which == "on_complete" or all_completed)
        ]

    def live(self, statuses: Iterable[JobStatus]) -> dict[str, int]:
        """The live_<status> counts for its members' statuses now (a deleted member keeps the
        status it was deleted in: delete.lua leaves the batch record as it is)."""
        counts = dict.fromkeys((s.value for s in LIVE_STATUSES), 0)
        for status in statuses:
            counts[status.value] += 1
        return counts


def settled_order(modelled: list[str], stored: list[str], loose: set[str]) -> list[str]:
    """A queue's list or priority ZSET after a call that pushed `loose` ids to the back in an
    order of Redis's own: `stored` when it differs from `modelled` only in which loose id sits
    at each loose place (and, in a list, in a WAKE: pushed or not as a prioritized job found the
    list empty or not, in an order the call chose); else `modelled`, for the caller's equality
    check to fail on. A queue the call pushed no loose id to keeps its modelled order."""
    if not loose.intersection(modelled):
        return modelled
    ours = [i for i in modelled if i != WAKE]
    theirs = [i for i in stored if i != WAKE]
    if sorted(ours) != sorted(theirs):
        return modelled
    for mine, found in zip(ours, theirs, strict=True):
        if (mine in loose) != (found in loose) or (mine not in loose and mine != found):
            return modelled
    return list(stored)
