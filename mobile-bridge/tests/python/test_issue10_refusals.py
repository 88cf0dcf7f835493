"""Issue 10: the server refuses what a member may not write; the member's phone marks the
record, says why in Chinese (no personal data), and does not send it again until it changes.
"""

import sanjin_mobile_bridge as sb
from conftest import visit


def enrolled(tmp_path, server, key, member, name):
    store = sb.DeviceStore.create(str(tmp_path / f"{key.replace('/', '-')}.sqlite"), member)
    store.enroll(server["url"], server["codes"][key], server["ca_pem"], name)
    return store


def ids(rows):
    return {r.id for r in rows}


def test_issue10_a_refused_record_says_why_in_chinese_and_is_not_sent_again(tmp_path, server):
    me = enrolled(tmp_path, server, "member-0001/issue10", "member-0001", "委员的手机")
    leader = enrolled(tmp_path, server, "member-0002/issue10", "member-0002", "组长的手机")
    me.sync()

    # A visit of another group (group-02): member-0001 of group-01 may not write it.
    other_title = "第二组联系点走访"
    other = me.record_visit(
        sb.VisitDraft(target_kind="village", contact_point="cp-006", group="group-02",
                      activity_type="调研座谈", start="2026-05-21T09:00", end="2026-05-21T10:00",
                      title=other_title),
        False,
    )
    # The member's own visit, submitted: accepted.
    mine = me.record_visit(visit("本组走访（待审核）", summary="听取村民意见。"), True)
    first = me.sync()
    assert first.sent == 1, first
    [forbidden] = first.refused
    assert forbidden.id == other and forbidden.code == "forbidden"
    assert forbidden.message_zh == "无权写入这条记录（不在本人活动组的范围内）"
    assert forbidden.field is None and forbidden.field_zh is None

    # The member approves their own visit: a step only the leader or staff may take. The phone
    # lets it through (it may not know the member's role); the server refuses it.
    assert me.step(mine, sb.Step.APPROVE, None) == "approved"
    second = me.sync()
    assert second.sent == 0, second
    [role] = second.refused
    assert role.id == mine and role.code == "role"
    assert role.field == "status" and role.field_zh == "状态"
    assert "组长" in role.message_zh

    # The record view says why, in Chinese, while the record is as it was refused.
    shown = me.show(other).refusal
    assert shown is not None and shown.code == "forbidden"
    assert shown.message_zh == forbidden.message_zh and shown.field is None
    assert shown.at_ms > 0
    approved = me.show(mine)
    assert approved.status == "approved"  # as the phone has it; the server does not
    assert approved.refusal.code == "role" and approved.refusal.field_zh == "状态"
    assert approved.refusal.message_zh == role.message_zh
    # No personal data in what the phone shows about a refusal: no title, no member.
    for r in (shown, approved.refusal, forbidden, role):
        for text in (r.message_zh, r.code, r.field or "", r.field_zh or ""):
            assert other_title not in text and "member-" not in text

    # The list marks them, and lists only them on request.
    rows = {r.id: r for r in me.list(sb.ListFilter(kind=sb.Kind.VISIT, month="2026-05"))}
    assert rows[other].refused and rows[mine].refused
    everything = me.list(sb.ListFilter(kind=sb.Kind.VISIT))
    assert {r.id for r in everything if r.refused} == {other, mine}
    assert ids(me.list(sb.ListFilter(kind=sb.Kind.VISIT, refused_only=True))) == {other, mine}
    assert len(me.list(sb.ListFilter(kind=sb.Kind.VISIT, refused_only=True, limit=1))) == 1
    assert me.list(sb.ListFilter(kind=sb.Kind.OPINION, refused_only=True)) == []

    # The next sync does not send them again: the server would have answered a push with an
    # ack or a refusal, and there is neither; they stay on the phone.
    third = me.sync()
    assert third.sent == 0 and third.refused == [], third
    assert third.still_queued == 2 and me.pending_uploads() == 2
    assert third.bytes_up < second.bytes_up
    assert me.show(other).refusal.code == "forbidden"

    # The server kept neither: the leader sees the visit submitted, not approved.
    leader.sync()
    assert leader.show(mine).status == "submitted"
    assert me.show(mine).status == "approved"

    # Once the member changes the refused record it is no longer marked (it will be sent again)…
    me.edit(other, [sb.FieldEdit.SET(field="title", value="第二组联系点走访（补充）")])
    assert me.show(other).refusal is None
    assert ids(me.list(sb.ListFilter(kind=sb.Kind.VISIT, refused_only=True))) == {mine}
    # …and it is: the server refuses it again, and the phone says so again.
    fourth = me.sync()
    assert [(r.id, r.code) for r in fourth.refused] == [(other, "forbidden")]
    assert me.show(other).refusal.code == "forbidden"
