"""Issue 6: a member's day through the bridge, against a real server.

Three phones of group-01 — the member (member-0001), a colleague (member-0003) and the group's
leader (member-0002) — each a real device store driven only through the generated bindings.
"""

import json
import os
import threading

import sanjin_mobile_bridge as sb
from conftest import Progress, phone, visit


def field(detail, name):
    return json.loads(next(f.value_json for f in detail.fields if f.name == name))


def fields_of(photo):
    """A photo's fields, for comparing photos read back from a record. GPS to 1e-7 degrees
    (1 cm): the document's JSON round trip may move the last bit of a float."""
    gps = photo.gps and (round(photo.gps.lat, 7), round(photo.gps.lon, 7))
    return (photo.hash, photo.caption, photo.size_bytes, photo.width, photo.height, photo.mime,
            photo.taken_at, gps, photo.has_thumbnail, photo.original_pending)


def month(store, kind=sb.Kind.VISIT, **kw):
    return store.list(sb.ListFilter(kind=kind, month="2026-05", **kw))


def test_a_members_day(tmp_path, server, photos):
    me = phone(tmp_path, server, "member-0001")
    colleague = phone(tmp_path, server, "member-0003")
    leader = phone(tmp_path, server, "member-0002")
    assert me.identity().member == "member-0001"
    assert leader.enrollment().role == "leader"

    # In the village, no signal: two visits and an opinion, saved on the phone.
    me.set_link_type(sb.LinkType.OFFLINE)
    v1 = me.record_visit(visit("新华村人居环境座谈", summary="听取村民对垃圾清运的意见。"), False)
    v2 = me.record_visit(
        visit("走访结对户", start="2026-05-19T14:00", end="2026-05-19T15:00", gps="30.92,113.91",
              summary="了解结对户近况。", helpers=["村委会 李主任"]),
        True,
    )
    op = me.record_opinion(
        sb.OpinionDraft(
            topic="垃圾清运不及时",
            contact_point="cp-001",
            group="group-01",
            text="村民反映垃圾清运每周仅一次。",
            urgency="urgent",
            recorded_on="2026-05-19",
            visit=v1,
        ),
        False,
    )
    rows = month(me)
    assert {r.id for r in rows} == {v1, v2}
    assert all(r.members == ["member-0001"] for r in rows)
    assert [r.id for r in month(me, sb.Kind.OPINION)] == [op]
    assert me.show(v2).status == "submitted"

    # A photo of the village's rubbish point, from the camera's file (EXIF time and GPS).
    p = me.attach_photo(v1, sb.PhotoSource.PATH(path=photos["jpeg"]), "村口垃圾点")
    assert len(p.hash) == 64 and p.mime == "image/jpeg" and (p.width, p.height) == (640, 480)
    assert p.size_bytes == os.path.getsize(photos["jpeg"]) and p.caption == "村口垃圾点"
    assert p.taken_at == "2026-05-19T09:41:00"
    assert abs(p.gps.lat - 30.92) < 1e-4 and abs(p.gps.lon - 113.91) < 1e-4
    assert p.has_thumbnail and p.original_pending
    assert [fields_of(x) for x in me.show(v1).photos] == [fields_of(p)]
    thumb = me.photo_thumbnail(v1, p.hash)
    assert thumb[:3] == b"\xff\xd8\xff" and len(thumb) <= 25 * 1024
    assert me.pending_photos() == 1
    assert me.pending_uploads() == 3

    # Back in signal: one sync sends everything, with progress.
    me.set_link_type(sb.LinkType.CELLULAR)
    assert me.link_type() == sb.LinkType.CELLULAR
    progress = Progress()
    report = me.sync(progress, sb.SyncCancel())
    assert report.sent == 3 and report.refused == [] and report.still_queued == 0
    assert me.pending_uploads() == 0
    # On mobile data the phone's default policy (wifi-only) keeps the original back; the
    # thumbnail went with the record.
    assert report.photos_held_by_policy and report.photos_pending == 1
    assert report.photos_uploaded == 0 and report.photo_bytes_sent == 0
    assert me.pending_photos() == 1 and me.show(v1).photos[0].original_pending
    assert any(isinstance(p, sb.SyncProgress.PUSHING) and p.total == 3 for p in progress.seen)

    # A colleague's record arrives.
    colleague.sync()
    cv = colleague.record_visit(visit("园区企业座谈", start="2026-05-20T09:00", end="2026-05-20T10:00"), False)
    # The colleague's photo comes from a picker's bytes; the policy `now` sends the original
    # on any link.
    with open(photos["png"], "rb") as f:
        png = f.read()
    cp = colleague.attach_photo(cv, sb.PhotoSource.BYTES(bytes=png), "园区")
    assert cp.mime == "image/png" and cp.taken_at is None and cp.gps is None
    sent = colleague.sync(settings=sb.SyncSettings(photos=sb.PhotoPolicy.NOW))
    assert sent.sent == 1 and sent.photos_uploaded == 1 and sent.photos_pending == 0
    assert sent.photo_bytes_sent >= len(png) and colleague.pending_photos() == 0
    got = me.sync()
    assert got.received >= 1
    arrived = me.show(cv)
    assert arrived.created_by == "member-0003" and field(arrived, "title") == "园区企业座谈"
    [seen] = arrived.photos
    assert seen.hash == cp.hash and seen.caption == "园区" and seen.has_thumbnail
    assert not seen.original_pending
    assert me.photo_thumbnail(cv, cp.hash) == colleague.photo_thumbnail(cv, cp.hash)
    assert cv in {r.id for r in month(me)}

    # Both edit the first visit's title offline: a real conflict, both values kept.
    me.edit(v1, [sb.FieldEdit.SET(field="title", value="新华村垃圾清运座谈")])
    colleague.edit(v1, [sb.FieldEdit.SET(field="title", value="新华村环境整治座谈")])
    me.sync()
    assert colleague.sync().conflicts == 1
    me.sync()
    mine = me.show(v1)
    assert [c.field for c in mine.conflicts] == ["title"]
    authors = {v.member: json.loads(v.value_json) for v in mine.conflicts[0].values}
    assert authors == {"member-0001": "新华村垃圾清运座谈", "member-0003": "新华村环境整治座谈"}
    assert [r.id for r in month(me, only_conflicts=True)] == [v1]

    # The leader sees it and resolves it; everyone gets the decision.
    leader.sync()
    assert [r.id for r in month(leader, only_conflicts=True)] == [v1]
    leader.resolve(v1, "title", "新华村垃圾清运座谈")
    assert leader.step(v2, sb.Step.APPROVE, "材料齐全") == "approved"
    leader.sync()
    me.sync()
    settled = me.show(v1)
    assert settled.conflicts == [] and field(settled, "title") == "新华村垃圾清运座谈"
    assert any(h.action == "resolve" and h.member == "member-0002" for h in settled.history)
    assert me.show(v2).status == "approved"
    assert month(me, only_conflicts=True) == []

    # The leader has the member's photo with its thumbnail, before the original has moved.
    [lp] = leader.show(v1).photos
    assert fields_of(lp)[:-1] == fields_of(p)[:-1]
    assert not lp.original_pending
    assert leader.photo_thumbnail(v1, p.hash) == thumb

    # On Wi-Fi: `never` still holds the original; the default policy sends it, with progress.
    me.set_link_type(sb.LinkType.WIFI)
    held = me.sync(settings=sb.SyncSettings(photos=sb.PhotoPolicy.NEVER))
    assert held.photos_held_by_policy and held.photos_pending == 1
    progress = Progress()
    report = me.sync(progress)
    assert report.photos_uploaded == 1 and report.photos_pending == 0
    assert not report.photos_held_by_policy and report.photos_failed == []
    assert report.photo_bytes_sent >= p.size_bytes
    assert any(isinstance(x, sb.SyncProgress.UPLOADING_PHOTO) and x.sent == x.size == p.size_bytes
               for x in progress.seen)
    assert me.pending_photos() == 0 and not me.show(v1).photos[0].original_pending
    assert me.sync().photos_uploaded == 0

    # The trace: who changed what, on which device.
    history = me.show(v1).history
    assert [h.member for h in history][:1] == ["member-0001"]
    assert {h.member for h in history} == {"member-0001", "member-0002", "member-0003"}

    # Delete is a tombstone; restore brings it back.
    me.delete(op, "重复记录")
    assert month(me, sb.Kind.OPINION) == []
    assert [r.id for r in month(me, sb.Kind.OPINION, include_deleted=True)] == [op]
    me.restore(op)
    assert me.show(op).deleted is False
    assert me.sync().refused == []

    # Every kind lists and shows: the directory arrived with the sync.
    groups = me.list(sb.ListFilter(kind=sb.Kind.GROUP))
    assert "group-01" in {g.id for g in groups}
    assert field(me.show("group-01"), "leader") == "member-0002"

    for s in (me, colleague, leader):
        s.close_store()


def test_every_field_kind_is_created_edited_and_stepped(tmp_path):
    s = sb.DeviceStore.create(str(tmp_path / "solo.sqlite"), "member-0001")
    hh = s.record_household(
        sb.HouseholdDraft(head_name="王某", contact_point="cp-001", group="group-01", size=3)
    )
    s.edit(
        hh,
        [
            sb.FieldEdit.ADD(field="assisting_members", value="member-0003"),
            sb.FieldEdit.APPEND(
                field="log",
                value=json.dumps({"date": "2026-05-19", "member": "member-0001", "action": "送米面油"}),
            ),
        ],
    )
    d = s.show(hh)
    assert set(field(d, "assisting_members")) == {"member-0001", "member-0003"}
    assert field(d, "log")[0]["action"] == "送米面油"

    plan = s.record_plan(
        sb.PlanDraft(year=2026, quarter=2, month=5, group="group-01", activity_type="consultation", title="协商议事")
    )
    assert field(s.show(plan), "owner") == "member-0001"

    op = s.record_json(
        sb.Kind.OPINION,
        json.dumps({"topic": "路灯", "opinion_kind": "micro_suggestion", "urgency": "normal",
                    "text": "村口路灯损坏。", "contact_point": "cp-001", "group": "group-01",
                    "recorded_on": "2026-05-03"}),
        False,
    )
    for step, state in [(sb.Step.SUBMIT, "submitted"), (sb.Step.ACCEPT, "accepted")]:
        assert s.step(op, step, None) == state
    names = [f.name for f in sb.record_fields(sb.Kind.VISIT)]
    assert names[:2] == ["target_kind", "contact_point"] and "photos" in names
    assert {r.id for r in s.list(sb.ListFilter(kind=sb.Kind.PLAN))} == {plan}
    s.close_store()


def test_the_app_keeps_working_while_a_sync_runs(tmp_path, server):
    """`sync` blocks its own (background) thread on its own connection; the app records and
    lists meanwhile from another thread (ctypes releases the GIL during the call)."""
    s = sb.DeviceStore.create(str(tmp_path / "tablet.sqlite"), "member-0003")
    s.enroll(server["url"], server["codes"]["member-0003/second"], server["ca_pem"], "平板")
    before = [s.record_visit(visit(f"座谈 {i}"), False) for i in range(30)]
    progress, result = Progress(), {}

    def background():
        try:
            result["report"] = s.sync(progress)
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = e

    t = threading.Thread(target=background)
    t.start()
    during = [s.record_visit(visit("同步时新建"), False) for _ in range(5)]
    listed = {r.id for r in month(s)}
    t.join(120)
    assert not t.is_alive() and "error" not in result, result
    assert set(during) <= listed
    assert result["report"].refused == [] and progress.seen
    # Whatever the first sync did not take, the next one does; nothing is lost.
    s.sync()
    assert s.pending_uploads() == 0
    assert set(before + during) <= {r.id for r in month(s)}
    s.close_store()
