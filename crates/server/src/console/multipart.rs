//! The console's one reader of `multipart/form-data` bodies (RFC 7578), the uploads of the
//! plan import (`plans_import.rs`) and the directory import (`directory.rs`): what a form
//! without script sends with a file. The server's axum has no multipart feature; this parser is
//! small and strict (the media type, a boundary of at most 200 bytes, every header line
//! `Name: value`, a `form-data` disposition naming the part, at most 16 parts). Each caller
//! turns a refusal into its own message in Chinese.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// The most parts one body may have.
const MAX_PARTS: usize = 16;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len())
        .find(|&i| hay[i] == needle[0] && &hay[i..i + needle.len()] == needle)
}

/// A parameter of a header value (`boundary=…`, `name="…"`), quoted or not.
fn param(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(key) {
            return None;
        }
        let v = v.trim();
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_string(),
        )
    })
}

/// The parts of a `multipart/form-data` body sent with `content_type`; `None` for any other
/// media type or a body that does not follow the format.
pub(super) fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = param(content_type, "boundary").filter(|b| !b.is_empty() && b.len() <= 200)?;
    let delim = format!("--{boundary}").into_bytes();
    let mut end_delim = b"\r\n".to_vec();
    end_delim.extend_from_slice(&delim);
    let mut at = find(body, &delim, 0)? + delim.len();
    let mut parts = Vec::new();
    loop {
        // After a delimiter: `--` ends the body, CRLF starts a part.
        if body[at..].starts_with(b"--") {
            return Some(parts);
        }
        if !body[at..].starts_with(b"\r\n") {
            return None;
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = std::str::from_utf8(&body[at..head_end]).ok()?;
        let mut name = None;
        let mut filename = None;
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':')?;
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                if !v.trim().to_ascii_lowercase().starts_with("form-data") {
                    return None;
                }
                name = param(v, "name");
                filename = param(v, "filename");
            }
        }
        let start = head_end + 4;
        let end = find(body, &end_delim, start)?;
        parts.push(Part {
            name: name?,
            filename,
            data: body[start..end].to_vec(),
        });
        if parts.len() > MAX_PARTS {
            return None;
        }
        at = end + end_delim.len();
    }
}

/// The parts of an upload request: its body read with its `Content-Type` header.
pub(super) fn read(headers: &HeaderMap, body: &[u8]) -> Option<Vec<Part>> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    multipart(content_type, body)
}

/// The part named `name`.
pub(super) fn field<'a>(parts: &'a [Part], name: &str) -> Option<&'a Part> {
    parts.iter().find(|p| p.name == name)
}

/// The CSRF token sent as the part `csrf`: empty when there is none or it is not UTF-8 (either
/// way the token check refuses it).
pub(super) fn csrf(parts: &[Part]) -> &str {
    field(parts, "csrf")
        .and_then(|p| std::str::from_utf8(&p.data).ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue13_multipart_bodies() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nab12\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\xe8\xae\xa1\xe5\x88\x92.xlsx\"\r\nContent-Type: application/octet-stream\r\n\r\nPK\x03\x04\r\n--X\x00\xff\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].data.as_slice()),
            ("csrf", &b"ab12"[..])
        );
        assert_eq!(parts[1].filename.as_deref(), Some("计划.xlsx"));
        assert_eq!(parts[1].data, b"PK\x03\x04\r\n--X\x00\xff");
        let quoted = multipart("multipart/form-data; boundary=\"XyZ\"", body).unwrap();
        assert_eq!(quoted, parts);
        for (ct, b) in [
            ("application/x-www-form-urlencoded", &body[..]),
            ("multipart/form-data", &body[..]),
            ("multipart/form-data; boundary=Other", &body[..]),
            ("multipart/form-data; boundary=XyZ", &body[..40]),
            (
                "multipart/form-data; boundary=XyZ",
                b"--XyZ\r\nNoColonHere\r\n\r\nx\r\n--XyZ--",
            ),
        ] {
            assert!(multipart(ct, b).is_none(), "{ct}");
        }
    }

    #[test]
    fn issue13_multipart_upload_is_read() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.xlsx\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--\x02\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].data.as_slice()),
            ("csrf", &b"abc"[..])
        );
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].filename.as_deref(), Some("a.xlsx"));
        assert_eq!(parts[1].data, b"\x00\x01\r\n--\x02".to_vec());
        assert!(multipart("multipart/form-data", body).is_none());
        assert!(multipart("multipart/form-data; boundary=XyZ", b"--XyZ\r\ngarbage").is_none());
    }

    #[test]
    fn issue13_multipart_request_fields_and_csrf() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nt0k\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nPK\r\n--XyZ--\r\n";
        let mut headers = HeaderMap::new();
        assert!(read(&headers, body).is_none(), "no content type");
        headers.insert(
            CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        let parts = read(&headers, body).unwrap();
        assert_eq!(csrf(&parts), "t0k");
        assert_eq!(field(&parts, "file").unwrap().data, b"PK");
        assert!(field(&parts, "other").is_none());
        let bad =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n\xff\r\n--XyZ--\r\n";
        assert_eq!(csrf(&read(&headers, bad).unwrap()), "");
        assert_eq!(csrf(&[]), "");
    }

    #[test]
    fn issue13_multipart_refuses_unnamed_and_too_many_parts() {
        let unnamed = b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n";
        assert!(multipart("multipart/form-data; boundary=XyZ", unnamed).is_none());
        let not_form =
            b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--\r\n";
        assert!(multipart("multipart/form-data; boundary=XyZ", not_form).is_none());
        let one = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n";
        let body = |n: usize| format!("{}--XyZ--\r\n", one.repeat(n)).into_bytes();
        let ct = "multipart/form-data; boundary=XyZ";
        assert_eq!(multipart(ct, &body(MAX_PARTS)).unwrap().len(), MAX_PARTS);
        assert!(multipart(ct, &body(MAX_PARTS + 1)).is_none());
    }
}
