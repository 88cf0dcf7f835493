"""Issue 6: bad input from the foreign side gives the public error (or the bindings' own
TypeError before the call), never a crash or a panic across the FFI; the store stays usable."""

import json
import struct
import zlib

import pytest

import sanjin_mobile_bridge as sb
from conftest import visit

E = sb.ApiError


@pytest.fixture
def store(tmp_path):
    s = sb.DeviceStore.create(str(tmp_path / "phone.sqlite"), "member-0001")
    yield s
    s.close_store()


def test_wrong_types(store):
    # Python types the bindings cannot lower: refused by the generated code before the call
    # (TypeError, AttributeError or ValueError), so nothing reaches Rust.
    with pytest.raises(TypeError):
        store.show(42)
    with pytest.raises((TypeError, AttributeError)):
        store.record_visit({"title": "a dict, not a draft"}, False)
    with pytest.raises(ValueError):
        store.list(sb.ListFilter(kind="visit"))
    with pytest.raises(TypeError):
        store.resolve(None, "title", "x")
    # Values of the wrong type for a field: the public error names the field, not the value.
    with pytest.raises(E.InvalidInput) as e:
        store.record_visit(visit("座谈", start="昨天上午 张三家"), False)
    assert (e.value.field, e.value.reason) == ("start", "bad_format")
    assert "张三" not in str(e.value) and "张三" not in e.value.message_zh
    assert "开始时间" in e.value.message_zh
    with pytest.raises(E.InvalidInput) as e:
        store.record_json(sb.Kind.HOUSEHOLD, json.dumps({"head_name": "王某", "contact_point": "cp-001",
                                                         "group": "group-01", "address": "", "size": "three"}), False)
    assert e.value.field == "size"
    with pytest.raises(E.InvalidInput) as e:
        store.record_json(sb.Kind.VISIT, "[1, 2", False)
    assert e.value.field == "record"
    with pytest.raises(E.InvalidInput) as e:
        store.record_json(sb.Kind.MEMBER, "{}", False)
    assert e.value.reason == "directory_kind"
    with pytest.raises(E.InvalidInput) as e:
        store.record_visit(visit("座谈", start="2026-05-19T12:00", end="2026-05-19T09:00"), False)
    assert e.value.reason == "end_before_start"
    with pytest.raises(E.InvalidInput):
        store.list(sb.ListFilter(kind=sb.Kind.VISIT, month="May"))
    assert store.list(sb.ListFilter(kind=sb.Kind.VISIT)) == []


def test_invalid_ids_and_edits(store, tmp_path):
    v = store.record_visit(visit("座谈"), False)
    for bad in ["", "../../etc/passwd", "00000000-0000-4000-8000-000000000000", "x" * 500, "名字"]:
        with pytest.raises(E.NotFound):
            store.show(bad)
        with pytest.raises(E.NotFound):
            store.edit(bad, [sb.FieldEdit.SET(field="title", value="x")])
    with pytest.raises(E.InvalidInput) as e:
        store.edit(v, [sb.FieldEdit.SET(field="no_such_field", value="x")])
    assert e.value.reason == "unknown_field"
    with pytest.raises(E.InvalidInput) as e:
        store.edit(v, [sb.FieldEdit.ADD(field="title", value="x")])
    assert e.value.reason == "wrong_edit"
    with pytest.raises(E.InvalidInput) as e:
        store.resolve(v, "title", "x")
    assert e.value.reason == "no_conflict"
    with pytest.raises(E.InvalidInput) as e:
        store.step(v, sb.Step.ACCEPT, None)
    assert e.value.reason == "not_a_transition"
    with pytest.raises(E.InvalidInput):
        sb.DeviceStore.create(str(tmp_path / "other.sqlite"), "张三 member")
    # Nothing of the failed calls was written.
    assert len(store.show(v).history) == 1


def test_missing_and_wrong_files(store, tmp_path):
    with pytest.raises(E.FileMissing):
        sb.DeviceStore.open(str(tmp_path / "no-such.sqlite"))
    with pytest.raises(E.FileMissing):
        sb.DeviceStore.create(str(tmp_path / "no-such-dir" / "x.sqlite"), "member-0001")
    with pytest.raises(E.FileMissing):
        store.merge_from(str(tmp_path / "other-phone.sqlite"))
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just some text that is long enough " * 100)
    with pytest.raises(E.NotAStore):
        sb.DeviceStore.open(str(text))
    with pytest.raises(E.StoreExists):
        sb.DeviceStore.create(str(tmp_path / "phone.sqlite"), "member-0002")


def test_a_closed_store(tmp_path):
    s = sb.DeviceStore.create(str(tmp_path / "phone.sqlite"), "member-0001")
    v = s.record_visit(visit("座谈"), False)
    s.close_store()
    s.close_store()
    for call in [
        lambda: s.show(v),
        lambda: s.list(sb.ListFilter(kind=sb.Kind.VISIT)),
        lambda: s.record_visit(visit("座谈"), False),
        lambda: s.sync(None, None),
        lambda: s.identity(),
        lambda: s.attach_photo(v, sb.PhotoSource.BYTES(bytes=b"\xff\xd8\xff"), ""),
        lambda: s.photo_thumbnail(v, "0" * 64),
        lambda: s.pending_photos(),
    ]:
        with pytest.raises(E.StoreClosed):
            call()
    again = sb.DeviceStore.open(str(tmp_path / "phone.sqlite"))
    assert again.show(v).id == v


def png_header(width, height):
    """A PNG whose header claims `width` × `height` pixels (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_bad_photos_issue_6(store, tmp_path, photos):
    v = store.record_visit(visit("座谈"), False)

    def refused(source, reason):
        with pytest.raises(E.PhotoRefused) as e:
            store.attach_photo(v, source, "说明")
        assert e.value.reason == reason, e.value
        assert str(tmp_path) not in str(e.value) and str(tmp_path) not in e.value.message_zh
        return e.value

    # A text file named .jpg: refused by its content, the message names the accepted formats.
    fake = tmp_path / "张三家.jpg"
    fake.write_text("这不是照片，是张三的电话 13800000000")
    e = refused(sb.PhotoSource.PATH(path=str(fake)), "unsupported")
    assert "JPEG" in e.message_zh and "张三" not in e.message_zh and "13800000000" not in str(e)
    refused(sb.PhotoSource.BYTES(bytes=b""), "empty")
    refused(sb.PhotoSource.BYTES(bytes=png_header(100_000, 100_000)), "too_large")
    with open(photos["jpeg"], "rb") as f:
        jpeg = f.read()
    refused(sb.PhotoSource.BYTES(bytes=jpeg[: len(jpeg) // 2]), "corrupt")

    # Missing files (and a folder): the public error, no path in it.
    for missing in [tmp_path / "张三" / "no-such.jpg", tmp_path]:
        with pytest.raises(E.FileMissing) as e:
            store.attach_photo(v, sb.PhotoSource.PATH(path=str(missing)), "")
        assert str(tmp_path) not in str(e.value) and str(tmp_path) not in e.value.message_zh
    # A good photo on a record that does not exist, or of a kind without photos.
    for bad in ["", "../../etc/passwd", "00000000-0000-4000-8000-000000000000"]:
        with pytest.raises(E.NotFound):
            store.attach_photo(bad, sb.PhotoSource.PATH(path=photos["jpeg"]), "")
    op = store.record_opinion(sb.OpinionDraft(topic="路灯", contact_point="cp-001", group="group-01"), False)
    with pytest.raises(E.InvalidInput) as e:
        store.attach_photo(op, sb.PhotoSource.PATH(path=photos["jpeg"]), "")
    assert e.value.field == "photos"
    # Wrong Python types: refused by the bindings before the call.
    with pytest.raises((TypeError, ValueError)):
        store.attach_photo(v, sb.PhotoSource.PATH(path=42), "")
    with pytest.raises((TypeError, ValueError, AttributeError)):
        store.attach_photo(v, photos["jpeg"], "")
    with pytest.raises((TypeError, ValueError)):
        store.attach_photo(v, sb.PhotoSource.BYTES(bytes="not bytes"), "")
    # Thumbnails that are not there.
    for rid, h in [(v, "0" * 64), (v, "../x"), ("no such record", "0" * 64)]:
        with pytest.raises(E.NotFound):
            store.photo_thumbnail(rid, h)

    # Nothing of the refused attaches was written; a good one still works.
    assert store.show(v).photos == [] and store.pending_photos() == 0
    assert len(store.show(v).history) == 1
    p = store.attach_photo(v, sb.PhotoSource.BYTES(bytes=jpeg), "")
    assert [x.hash for x in store.show(v).photos] == [p.hash] and store.pending_photos() == 1


def test_sync_problems_are_public_errors(store, server):
    with pytest.raises(E.NotEnrolled):
        store.sync(None, None)
    with pytest.raises(E.BadServerAddress):
        store.enroll("ftp://example.org", "CODE", None, "phone")
    with pytest.raises(E.BadServerAddress):
        store.enroll("http://example.org:8080", "CODE", None, "phone")
    with pytest.raises(E.InvalidInput):
        store.enroll(server["url"], "  ", server["ca_pem"], "phone")
    with pytest.raises(E.EnrollmentRefused):
        store.enroll(server["url"], "AAAA-BBBB-CC", server["ca_pem"], "phone")
    with pytest.raises(E.Untrusted):
        store.enroll(server["url"], "AAAA-BBBB-CC", "not a certificate", "phone")
    with pytest.raises(E.Offline):
        store.enroll("https://127.0.0.1:1", "AAAA-BBBB-CC", server["ca_pem"], "phone")
    assert store.enrollment() is None


class Raising(sb.SyncListener):
    def on_progress(self, progress):
        raise RuntimeError("a bug in the app's listener")


def test_cancel_and_a_failing_listener(tmp_path, server):
    # member-0001's second phone (its own one-time code).
    s = sb.DeviceStore.create(str(tmp_path / "second.sqlite"), "member-0001")
    s.enroll(server["url"], server["codes"]["member-0001/second"], server["ca_pem"], "备用手机")
    v = s.record_visit(visit("座谈"), False)

    cancel = sb.SyncCancel()
    cancel.cancel()
    assert cancel.is_cancelled()
    with pytest.raises(E.Cancelled):
        s.sync(None, cancel)
    assert s.pending_uploads() == 1

    # Cancelled from the listener in the middle: small batches make many round trips, the
    # sync stops at the next one, and what the server acknowledged so far stays acknowledged.
    for i in range(20):
        s.record_visit(visit(f"座谈 {i}"), False)

    class CancelAtFirstBatch(sb.SyncListener):
        def on_progress(self, progress):
            if isinstance(progress, sb.SyncProgress.PUSHING):
                cancel.cancel()

    cancel = sb.SyncCancel()
    with pytest.raises(E.Cancelled):
        s.sync(CancelAtFirstBatch(), cancel, sb.SyncSettings(batch_bytes=1024))
    assert 0 < s.pending_uploads() < 21
    with pytest.raises(E.InvalidInput) as e:
        s.sync(None, None, sb.SyncSettings(batch_bytes=10))
    assert e.value.field == "batch_bytes"

    # An exception in the app's listener does not cross back as a crash: the sync fails with
    # the public error and the store stays usable.
    with pytest.raises(E.Internal):
        s.sync(Raising(), None)
    assert s.show(v).id == v
    report = s.sync(None, None)
    assert report.refused == [] and s.pending_uploads() == 0
    s.close_store()
