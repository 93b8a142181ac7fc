"""Counted nouns: "1 job", "2 jobs", and a confirmed count that changed meanwhile said so."""

from jq_cli.model.words import confirmed_notice, plural


def test_one_is_singular_and_every_other_count_plural():
    assert plural(1, "job") == "1 job"
    assert plural(0, "job") == "0 jobs" and plural(2, "dead job") == "2 dead jobs"
    assert plural(1, "job waits", "jobs wait") == "1 job waits"
    assert plural(3, "job waits", "jobs wait") == "3 jobs wait"


def test_a_confirmed_notice_says_when_fewer_were_acted_on():
    assert confirmed_notice("deleted", 49, 49, "dead job") == "deleted 49 dead jobs"
    assert confirmed_notice("deleted", 48, 49, "dead job") == (
        "deleted 48 of the 49 dead jobs confirmed (1 changed meanwhile)"
    )
