"""Shared setup for the bridge's Python tests (issue 6).

Run by `mobile-bridge/tests/python.rs` under `cargo test`, which generates the bindings, starts a
real sync server on loopback with TLS and passes it in through the environment:

- SANJIN_SERVER_URL: https://127.0.0.1:PORT
- SANJIN_CA_PEM:     the server's self-signed certificate (PEM file), pinned at enrollment
- SANJIN_CODES:      JSON {member id (or "member/second" for a second device): one-time
                     enrollment code} for group-01 (fixtures/city):
                     member-0001 and member-0003 are members, member-0002 is the group's leader.
- SANJIN_PHOTO_JPEG: a 640 × 480 JPEG with EXIF (taken 2026-05-19 09:41, GPS 30.92,113.91)
- SANJIN_PHOTO_PNG:  a 320 × 240 PNG without EXIF
- SANJIN_STAFF:      `account:password` of office staff signed in to the console (issue 13);
                     the directory holds the unit `unit-001` (市城市管理局), and SANJIN_CODES a
                     code `member-0003/issue13`.
"""

import json
import os

import pytest

import sanjin_mobile_bridge as sb


@pytest.fixture(scope="session")
def server():
    url = os.environ.get("SANJIN_SERVER_URL")
    if not url:
        pytest.fail("run through `cargo test -p sanjin-mobile-bridge` (SANJIN_SERVER_URL unset)")
    with open(os.environ["SANJIN_CA_PEM"], encoding="utf-8") as f:
        ca_pem = f.read()
    return {"url": url, "ca_pem": ca_pem, "codes": json.loads(os.environ["SANJIN_CODES"])}


@pytest.fixture(scope="session")
def photos():
    """Paths of the photos the Rust harness made (`sanjin_media::testing`)."""
    return {"jpeg": os.environ["SANJIN_PHOTO_JPEG"], "png": os.environ["SANJIN_PHOTO_PNG"]}


class Progress(sb.SyncListener):
    """Collects what a sync reports."""

    def __init__(self):
        self.seen = []

    def on_progress(self, progress):
        self.seen.append(progress)


def phone(tmp_path, server, member):
    """A member's phone: a new store, enrolled with the server (its certificate pinned)."""
    store = sb.DeviceStore.create(str(tmp_path / f"{member}.sqlite"), member)
    e = store.enroll(server["url"], server["codes"][member], server["ca_pem"], f"{member} 的手机")
    assert e.member == member and e.pinned_certificate
    return store


def visit(title, start="2026-05-19T09:00", end="2026-05-19T11:30", **kw):
    return sb.VisitDraft(
        target_kind="village",
        contact_point="cp-001",
        group="group-01",
        activity_type="调研座谈",
        start=start,
        end=end,
        title=title,
        **kw,
    )
