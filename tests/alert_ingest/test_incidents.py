"""Which groups the intake remembers having indexed: a webhook of any other group creates the
index entry without reading it first (one NATS round trip fewer), so the memory must stay bounded
and keep the groups seen last."""

from services.alert_ingest.incidents import RecentGroups


def test_recent_groups_keep_the_latest_and_stay_bounded() -> None:
    recent = RecentGroups(size=3)
    for key in ("a", "b", "c"):
        recent.add(key)
    recent.add("a")  # seen again: the newest now
    recent.add("d")  # over the size: the oldest ("b") is forgotten
    assert [key in recent for key in ("a", "b", "c", "d")] == [True, False, True, True]
