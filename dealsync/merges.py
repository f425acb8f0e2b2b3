"""Records a CRM user merged (HubSpot): the link of a merged-away record follows the record it became.

A merge in HubSpot makes a new record; every merged id then answers with it, and its
`hs_merged_object_ids` lists them. That trail is written by HubSpot, not typed by users, so it may move
a link: to the survivor when nothing else links it, else the link ends (nothing is deleted). Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from dealsync.model import Link, LinkedIds, Side, other


def side_id(link: Link | LinkedIds, side: Side) -> str:
    """A link's record on one side."""
    return link.partner_id if side == "partner" else link.vendor_id


@dataclass(frozen=True)
class Merge:
    """A linked record merged into `new_id`: its link follows the survivor, or ends."""

    side: Side
    link: Link
    new_id: str
    follows: bool

    @property
    def old_id(self) -> str:
        return side_id(self.link, self.side)

    def relinked(self) -> Link:
        """The link as it is once it follows the survivor."""
        if self.side == "partner":
            return replace(self.link, partner_id=self.new_id)
        return replace(self.link, vendor_id=self.new_id)

    def message(self, noun: str) -> str:
        """The run report's line about it."""
        twin = side_id(self.link, other(self.side))
        if self.follows:
            return (
                f"{self.side} {noun} {self.old_id} was merged into {self.new_id}: its link with "
                f"{other(self.side)} {noun} {twin} follows {self.new_id}"
            )
        return (
            f"{self.side} {noun} {self.old_id} was merged into {self.new_id}, which is linked already: "
            f"the link with {other(self.side)} {noun} {twin} ended; {twin} is left as it is"
        )


def follow_merges(
    side: Side, survivors: Mapping[str, str], links: Iterable[Link], taken: Collection[str]
) -> list[Merge]:
    """For each link whose record on `side` was merged away (old id -> survivor): the oldest link of
    each survivor follows it, unless the survivor is linked already (`taken`); the others end."""
    groups: dict[str, list[Link]] = {}
    for link in sorted(links, key=lambda lk: lk.id or 0):
        if (old := side_id(link, side)) in survivors:
            groups.setdefault(survivors[old], []).append(link)
    return [
        Merge(side, link, new_id, follows=n == 0 and new_id not in taken)
        for new_id, group in groups.items()
        for n, link in enumerate(group)
    ]
