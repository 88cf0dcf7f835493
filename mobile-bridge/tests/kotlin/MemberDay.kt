// Issue 12, point 5: the bridge's generated Kotlin on the JVM, calling the Rust library through
// JNA exactly as an Android app does. Compiled together with the bindings and run by
// `mobile-bridge/tests/kotlin.rs`, which starts a real sync server on loopback (HTTPS with its
// self-signed certificate, whose public key the devices pin) and passes it in:
//
//   SANJIN_SERVER_URL   https://127.0.0.1:PORT
//   SANJIN_CA_PEM       path of the server's certificate (PEM), given at enrollment
//   SANJIN_CODE_<id>    one-time enrollment codes: member_0001 and member_0003 (members of
//                       group-01), member_0002 (group-01's leader)
//   SANJIN_PHOTO_JPEG   a 640 × 480 JPEG with EXIF (taken 2026-05-19 09:41, GPS 30.92,113.91)
//   SANJIN_WORK         an empty folder for the device stores
//
// Exits 0 after printing one "ok" line per scene; any failed check throws (exit 1). Scenes: a
// member's day with the server, a bundle between two phones, a phone-to-phone session.

import java.io.File
import org.sanjin.bridge.*

fun check(cond: Boolean, what: () -> String) {
    if (!cond) throw AssertionError(what())
}

fun env(name: String): String =
    System.getenv(name) ?: throw IllegalStateException("$name is not set: run through cargo test")

/** Collects what a sync reports, as an app's progress bar would. */
class Progress : SyncListener {
    val seen = mutableListOf<SyncProgress>()
    override fun onProgress(progress: SyncProgress) {
        synchronized(seen) { seen.add(progress) }
    }
}

fun visit(title: String, start: String = "2026-05-19T09:00", end: String = "2026-05-19T11:30") =
    VisitDraft(
        targetKind = "village",
        contactPoint = "cp-001",
        group = "group-01",
        activityType = "调研座谈",
        start = start,
        end = end,
        title = title,
        summary = "听取村民对垃圾清运的意见。",
    )

fun month(store: DeviceStore, kind: Kind = Kind.VISIT, onlyConflicts: Boolean = false) =
    store.list(ListFilter(kind = kind, month = "2026-05", onlyConflicts = onlyConflicts))

fun fieldJson(detail: RecordDetail, name: String): String =
    detail.fields.first { it.name == name }.valueJson

/** A member's phone: a new store in the app's private folder, enrolled (the server's key pinned). */
fun phone(work: File, member: String, server: String, caPem: String): DeviceStore {
    val store = DeviceStore.create(File(work, "$member.sqlite").path, member)
    val e = store.enroll(server, env("SANJIN_CODE_" + member.replace('-', '_')), caPem, "$member 的手机")
    check(e.member == member && e.pinnedCertificate) { "enrollment: $e" }
    return store
}

fun membersDay(work: File) {
    val server = env("SANJIN_SERVER_URL")
    val caPem = File(env("SANJIN_CA_PEM")).readText()
    val me = phone(work, "member-0001", server, caPem)
    val leader = phone(work, "member-0002", server, caPem)
    check(me.identity().member == "member-0001") { "identity" }
    check(leader.enrollment()?.role == "leader") { "leader's role: ${leader.enrollment()}" }

    // In the village, no signal: a visit and an opinion, saved on the phone.
    me.setLinkType(LinkType.OFFLINE)
    val v1 = me.recordVisit(visit("新华村人居环境座谈"), false)
    val op = me.recordOpinion(
        OpinionDraft(
            topic = "垃圾清运不及时",
            contactPoint = "cp-001",
            group = "group-01",
            text = "村民反映垃圾清运每周仅一次。",
            urgency = "urgent",
            recordedOn = "2026-05-19",
            visit = v1,
        ),
        false,
    )
    check(month(me).map { it.id } == listOf(v1)) { "visits: ${month(me)}" }
    check(month(me, Kind.OPINION).map { it.id } == listOf(op)) { "opinions" }
    check(month(me).single().members == listOf("member-0001")) { "members" }

    // An edit: one change of one record, all or nothing.
    me.edit(v1, listOf(FieldEdit.Set(field = "title", value = "新华村垃圾清运座谈")))
    check(fieldJson(me.show(v1), "title") == "\"新华村垃圾清运座谈\"") { "title after edit" }
    // A wrong value is refused with the field named (never the value) and nothing changes.
    try {
        me.edit(v1, listOf(FieldEdit.Set(field = "start", value = "昨天上午")))
        throw AssertionError("a bad time was accepted")
    } catch (e: ApiException.InvalidInput) {
        check(e.field == "start" && !e.messageZh.contains("昨天上午")) { "InvalidInput: $e" }
    }

    // A photo from the camera's file: EXIF time and GPS read, a thumbnail in the record.
    val photo = me.attachPhoto(v1, PhotoSource.Path(env("SANJIN_PHOTO_JPEG")), "村口垃圾点")
    check(photo.hash.length == 64 && photo.mime == "image/jpeg") { "photo: $photo" }
    check(photo.width == 640u && photo.height == 480u) { "photo size: $photo" }
    check(photo.takenAt == "2026-05-19T09:41:00" && photo.hasThumbnail && photo.originalPending) {
        "photo: $photo"
    }
    val gps = photo.gps ?: throw AssertionError("no GPS")
    check(Math.abs(gps.lat - 30.92) < 1e-4 && Math.abs(gps.lon - 113.91) < 1e-4) { "GPS: $gps" }
    val thumb = me.photoThumbnail(v1, photo.hash)
    check(thumb.size in 3..25 * 1024 && thumb[0] == 0xFF.toByte() && thumb[1] == 0xD8.toByte()) {
        "thumbnail of ${thumb.size} bytes"
    }
    check(me.pendingPhotos() == 1u && me.pendingUploads() == 2u) { "pending" }
    check(me.step(v1, Step.SUBMIT, null) == "submitted") { "submit" }
    println("kotlin: offline records, edit, photo ok")

    // Back on Wi-Fi: one sync sends the records, then the photo's original, with progress.
    me.setLinkType(LinkType.WIFI)
    val progress = Progress()
    val report = me.sync(progress, SyncCancel(), null)
    check(report.sent == 2u && report.refused.isEmpty() && report.stillQueued == 0u) { "sync: $report" }
    check(report.photosUploaded == 1u && report.photosPending == 0u) { "photos: $report" }
    check(report.photoBytesSent >= photo.sizeBytes) { "photo bytes: $report" }
    check(progress.seen.any { it is SyncProgress.Pushing && it.total == 2u }) { "progress: ${progress.seen}" }
    check(progress.seen.any { it is SyncProgress.UploadingPhoto }) { "photo progress: ${progress.seen}" }
    check(me.pendingUploads() == 0u && me.pendingPhotos() == 0u) { "still pending" }

    // The leader gets it with the thumbnail, approves; the member gets the decision.
    check(leader.sync().received >= 2u) { "leader's pull" }
    val seen = leader.show(v1)
    check(seen.createdBy == "member-0001" && fieldJson(seen, "title") == "\"新华村垃圾清运座谈\"") { "leader's view" }
    check(seen.photos.single().hash == photo.hash) { "leader's photos: ${seen.photos}" }
    check(leader.photoThumbnail(v1, photo.hash).contentEquals(thumb)) { "the same thumbnail" }
    check(leader.step(v1, Step.APPROVE, "材料齐全") == "approved") { "approve" }
    check(leader.sync().sent == 1u) { "leader's push" }
    me.sync(null, null, null)
    check(me.show(v1).status == "approved") { "status: ${me.show(v1).status}" }
    check(me.show(v1).history.map { it.member }.toSet() == setOf("member-0001", "member-0002")) { "history" }
    check(month(me, onlyConflicts = true).isEmpty()) { "conflicts" }
    // The directory arrived with the sync.
    check(me.list(ListFilter(kind = Kind.GROUP)).any { it.id == "group-01" }) { "directory" }
    println("kotlin: sync with the server, leader's approval ok")

    bundleWithoutSignal(work, me, server, caPem)
    meetingWithoutServer(me, leader)

    // Errors are typed exceptions with Chinese messages.
    try {
        me.show("no-such-record")
        throw AssertionError("an unknown record was shown")
    } catch (e: ApiException.NotFound) {
        check(e.messageZh.isNotEmpty()) { "NotFound without a message" }
    }

    // Closing: `closeStore()` ends the store (later calls: StoreClosed); `close()` is the
    // AutoCloseable that frees the Rust object, so `use { }` works as on any Closeable.
    val path = File(work, "member-0001.sqlite").path
    me.closeStore()
    me.closeStore()
    try {
        me.pendingUploads()
        throw AssertionError("a closed store answered")
    } catch (e: ApiException.StoreClosed) {
        check(e.messageZh.isNotEmpty()) { "StoreClosed without a message" }
    }
    me.close()
    val again = DeviceStore.open(path).use { s ->
        s.show(v1).status
    }
    check(again == "approved") { "reopened: $again" }
    leader.closeStore()
    leader.close()
    println("kotlin: closeStore, AutoCloseable.use ok")
}

/**
 * No signal in the village: the member's new visit goes to a colleague's phone as a bundle (the
 * app shares the parts through the share sheet or a chat app), reaches the server with the
 * colleague's next sync, attributed to the member, and the server's receipt comes back to the
 * member's phone in the colleague's bundle: 已送达 before the member ever had signal.
 */
fun bundleWithoutSignal(work: File, me: DeviceStore, server: String, caPem: String) {
    val colleague = phone(work, "member-0003", server, caPem)
    colleague.sync(null, null, null) // the group's keys come with a sync
    me.setLinkType(LinkType.OFFLINE)
    val v3 = me.recordVisit(visit("村口座谈（无信号）", "2026-05-21T09:00", "2026-05-21T10:00"), true)
    check(!me.show(v3).delivered) { "delivered before anything moved" }

    // Parts of at most 4 KiB (a chat app's limit); a photo's thumbnail makes its record's part larger.
    val export = me.exportBundle(BundleOptions(partSize = 4096uL))
    check(export.parts.size >= 2 && export.audienceGroup == "group-01") { "export: ${export.parts.size} parts, ${export.audienceGroup}" }
    check(export.records >= 3u && export.outside == 0u) { "export: $export" }

    // A part damaged on the way is refused with a Chinese message; nothing of it is saved.
    val damaged = export.parts[0].copyOf()
    damaged[damaged.size / 2] = (damaged[damaged.size / 2].toInt() xor 0x55).toByte()
    try {
        colleague.importBundle(damaged)
        throw AssertionError("a damaged part was imported")
    } catch (e: ApiException.BundleRefused) {
        check(e.messageZh.isNotEmpty() && e.reason.isNotEmpty()) { "BundleRefused: $e" }
    }

    // Any order (here: reversed), any number of times.
    val first = export.parts.reversed().map { colleague.importBundle(it) }
    val outcomes = first.flatMap { it.records }.filter { it.id == v3 }.map { it.outcome }
    check(outcomes == listOf("added")) { "v3: $outcomes in $first" }
    check(first.all { it.refused == 0u && it.parts.toInt() == export.parts.size }) { "import: $first" }
    val again = export.parts.map { colleague.importBundle(it) }
    check(again.all { it.added == 0u && it.updated == 0u && it.refused == 0u }) { "again: $again" }
    val got = colleague.show(v3)
    check(got.createdBy == "member-0001" && got.status == "submitted") { "colleague's view: $got" }

    // The colleague reaches signal first: the member's visit lands on the server, the receipt
    // comes back, and travels to the member's phone in the colleague's bundle.
    colleague.setLinkType(LinkType.WIFI)
    check(colleague.sync(null, null, null).refused.isEmpty()) { "colleague's sync" }
    val back = colleague.exportBundle(BundleOptions())
    val receipts = back.parts.map { me.importBundle(it) }.sumOf { it.receipts.toInt() }
    check(receipts >= 1) { "receipts: $receipts" }
    check(me.show(v3).delivered) { "已送达 on the member's phone" }
    colleague.closeStore()
    colleague.close()
    println("kotlin: bundle between phones, 已送达 ok")
}

/**
 * The village meeting, no server at all: the leader's phone opens a local session (a QR code and
 * a six-digit code); the member joins with the typed code, then again by the QR text. The same
 * checks as with the server: the device certificates, the group's scope.
 */
fun meetingWithoutServer(me: DeviceStore, leader: DeviceStore) {
    me.setLinkType(LinkType.OFFLINE)
    leader.setLinkType(LinkType.OFFLINE)
    val v5 = me.recordVisit(visit("村民议事会", "2026-05-22T09:00", "2026-05-22T10:30"), false)
    try {
        leader.show(v5)
        throw AssertionError("the leader had the visit before the meeting")
    } catch (e: ApiException.NotFound) {
    }
    // Loopback in the test; on a phone the default listens on the hotspot's network.
    val session = MeetSession.serve(leader, MeetSettings(minutes = 5u, bind = "127.0.0.1:0"))
    val code = session.code()
    check(session.qrText().startsWith("sanjin-meet:1:127.0.0.1:")) { "QR: ${session.qrText()}" }
    check(Regex("""\d{6}@127\.0\.0\.1:\d+""").matches(code)) { "code: $code" }

    // A mistyped code is refused in Chinese; nothing is exchanged.
    val digits = code.substringBefore('@')
    val wrong = (if (digits[0] == '9') "0" else "${digits[0] + 1}") + digits.substring(1) + "@" + code.substringAfter('@')
    try {
        meetJoin(me, wrong, false, null)
        throw AssertionError("a wrong code joined")
    } catch (e: ApiException.MeetRefused) {
        check(e.reason == "wrong_code" && e.messageZh.isNotEmpty()) { "MeetRefused: $e" }
    }

    val report = meetJoin(me, code, false, SyncCancel())
    check(report.peerMember == "member-0002" && report.refused.isEmpty()) { "join: $report" }
    check(report.sent >= 1u && report.bytesSent > 0uL) { "sent: $report" }
    val got = leader.show(v5)
    check(got.createdBy == "member-0001" && fieldJson(got, "title") == "\"村民议事会\"") { "leader's view: $got" }
    // Again by the QR text: nothing new either way.
    val again = meetJoin(me, session.qrText(), false, null)
    check(again.sent == 0u && again.landed == 0u) { "again: $again" }
    val status = session.stop()
    check(status.stopped && status.peers.count { it.report != null } == 2) { "status: $status" }
    session.close()
    println("kotlin: phone-to-phone session ok")
}

fun main() {
    val work = File(env("SANJIN_WORK"))
    membersDay(work)
    println("kotlin: all scenes passed")
}
