"""Counted nouns in messages, for every front end: "1 job", "2 jobs", never "1 jobs"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun`, in the plural unless count is 1 (`many` where adding "s" is wrong)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def confirmed_notice(verb: str, done: int, confirmed: int, noun: str) -> str:
    """What a confirmed bulk action did: "deleted 49 dead jobs", or, when some of the jobs
    confirmed changed before the action reached them, "deleted 48 of the 49 dead jobs confirmed
    (1 changed meanwhile)". Never more than confirmed: the action is bounded by the count."""
    if done == confirmed:
        return f"{verb} {plural(done, noun)}"
    return (
        f"{verb} {done} of the {plural(confirmed, noun)} confirmed "
        f"({confirmed - done} changed meanwhile)"
    )
