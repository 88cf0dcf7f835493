"""Issue 13: a member's opinion goes to a unit and back as feedback to the member's phone.

The member records and submits an opinion on the phone and syncs; office staff, signed in to
the console over HTTPS, accept it, forward it to a unit with a due day, record the handling and
give feedback (each a form POST with the session's CSRF token, as the browser sends it); the
phone syncs again and its record view shows the state, the unit, the handling and the feedback.
"""

import datetime
import http.cookiejar
import os
import re
import ssl
import urllib.parse
import urllib.request

import sanjin_mobile_bridge as sb


class Console:
    """A staff member's browser session in the console, over the server's pinned certificate."""

    def __init__(self, server):
        self.url = server["url"]
        ctx = ssl.create_default_context(cafile=os.environ["SANJIN_CA_PEM"])
        ctx.check_hostname = False  # the self-signed certificate is pinned by its CA file
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=ctx),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        )
        account, password = os.environ["SANJIN_STAFF"].split(":", 1)
        page = self.post("/console/login", {"account": account, "password": password})
        assert "/console/dashboard" in page.url, page.url
        self.csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.read().decode()).group(1)

    def post(self, path, fields):
        data = urllib.parse.urlencode(fields).encode()
        return self.opener.open(urllib.request.Request(self.url + path, data=data), timeout=30)

    def step(self, record, step, **fields):
        page = self.post(f"/console/records/{record}/step", {"csrf": self.csrf, "step": step, **fields})
        assert f"msg=step-{step}" in page.url, page.url
        return page.read().decode()


def test_issue13_the_member_sees_the_offices_feedback_after_a_sync(tmp_path, server):
    me = sb.DeviceStore.create(str(tmp_path / "issue13.sqlite"), "member-0003")
    me.enroll(server["url"], server["codes"]["member-0003/issue13"], server["ca_pem"], "委员的手机")
    op = me.record_opinion(
        sb.OpinionDraft(
            topic="新华村垃圾清运不及时",
            contact_point="cp-001",
            group="group-01",
            text="村民反映垃圾三天才清运一次。",
        ),
        True,
    )
    assert me.sync().refused == []
    assert me.show(op).opinion.state == "submitted"

    office = Console(server)
    due = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    office.step(op, "accept")
    office.step(op, "forward", unit="unit-001", due=due, note="请核实处理")
    office.step(op, "handle", note="已增加清运频次，每日一次")
    page = office.step(op, "feedback", note="办理结果已告知委员")
    assert "已反馈" in page

    assert me.sync().received >= 1
    d = me.show(op)
    o = d.opinion
    assert (o.state, o.state_zh) == ("feedback_given", "已反馈")
    assert (o.unit, o.unit_name, o.due) == ("unit-001", "市城市管理局", due)
    assert o.handling == "已增加清运频次，每日一次"
    assert (o.feedback, o.feedback_by) == ("办理结果已告知委员", "office-01")
    forward = [e for e in d.events if e.event == "forward"][0]
    assert (forward.unit, forward.due, forward.note) == ("unit-001", due, "请核实处理")
