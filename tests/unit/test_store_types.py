"""processor/store/models.py: the column types' own bind processing."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine
from sqlalchemy.dialects.sqlite import DATETIME

from processor.store.models import UTCDateTime, json_serializer


def test_sqlite_times_are_stored_in_the_text_sqlalchemy_would_store():
    """UTCDateTime formats a time for SQLite itself (a shortcut past the
    dialect's own processing): the text must stay the same, or stored times
    would stop comparing with the new ones."""
    dialect = create_engine("sqlite://", json_serializer=json_serializer).dialect
    ours = UTCDateTime()._cached_bind_processor(dialect)
    reference = DATETIME().bind_processor(dialect)
    now = datetime(2026, 12, 2, 18, 14, 43, 172074, tzinfo=timezone.utc)
    values = [now, now.replace(microsecond=0), datetime(2026, 1, 1), datetime(5, 1, 2, 3, 4, 5, 6),
              now.astimezone(timezone(timedelta(hours=8))), now.astimezone(ZoneInfo("Asia/Shanghai")),
              now.astimezone(ZoneInfo("UTC")), now.replace(tzinfo=None), None]
    got = [ours(v) for v in values]
    assert got == [reference(UTCDateTime().process_bind_param(v, dialect)) for v in values]
    assert got[0] == got[4] == got[5] == got[6] == got[7] == "2026-12-02 18:14:43.172074"
    assert got[1] == "2026-12-02 18:14:43.000000" and got[3] == "0005-01-02 03:04:05.000006"


def test_json_is_encoded_as_json_dumps_encodes_it_and_a_failed_value_is_not_kept():
    """SafeJSON's check reuses one C encoder: the text is json.dumps's
    (ensure_ascii=False), and a value it cannot encode is not kept by the
    encoder's circular-reference check (which would hold it, and take a
    later value at its address for a circular one)."""
    import gc
    import json
    import weakref

    from processor.store.models import _dumps

    for value in ([], {}, "文本", 3, 2.5, None, True, {"从": ["待审批", 1, None, {"n": "\"引号\"\n"}]}, [[[]]]):
        assert _dumps(value) == json.dumps(value, ensure_ascii=False)

    class Opaque:
        pass

    loop: list = []
    loop.append(loop)
    bad = [1, [Opaque()]]
    kept = weakref.ref(bad[1][0])
    for value in (loop, bad, {"k": {"inner": Opaque()}}):
        try:
            _dumps(value)
        except (TypeError, ValueError):
            pass
        else:
            raise AssertionError(f"{value!r} encoded")
    del bad
    gc.collect()
    assert kept() is None
    assert _dumps([[n] for n in range(100)]) == json.dumps([[n] for n in range(100)])
