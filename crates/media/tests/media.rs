//! sanjin-media (issue 4, point 1): formats by content, limits, EXIF and orientation, thumbnail
//! and display copy, content address. Every image is generated here; nothing binary is committed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use sanjin_media::image::{self, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use sanjin_media::testing::{self, ExifSpec};
use sanjin_media::{
    ACCEPTED_ZH, Format, Limits, MediaError, THUMBNAIL_MAX_BYTES, THUMBNAIL_QUALITIES, process,
};

// ---------------------------------------------------------------------------------------------
// The largest single allocation made by this thread, so a test can show that a refused bomb
// never allocated its pixels.

struct Counting;

thread_local! {
    static BIGGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = BIGGEST.try_with(|b| b.set(b.get().max(layout.size())));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = BIGGEST.try_with(|b| b.set(b.get().max(layout.size())));
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = BIGGEST.try_with(|b| b.set(b.get().max(new_size)));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result, the largest single allocation it made and its duration.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    BIGGEST.with(|b| b.set(0));
    let t = Instant::now();
    let out = f();
    let elapsed = t.elapsed();
    (out, BIGGEST.with(Cell::get), elapsed)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn picture(w: u32, h: u32) -> RgbImage {
    testing::photo(w, h, 42, 6)
}

fn encoded(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let img = picture(w, h);
    match format {
        ImageFormat::Jpeg => testing::jpeg(&img, 90),
        f => testing::encode(&img, f),
    }
}

fn decode_jpeg(bytes: &[u8]) -> RgbImage {
    assert!(
        bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "a derivative is a JPEG"
    );
    sanjin_media::decode(bytes, &Limits::default())
        .expect("derivatives decode")
        .into_rgb8()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG that is a signature and an IHDR claiming `w × h`, nothing else.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out
}

/// A JPEG that is SOI and a baseline SOF0 claiming `w × h`, nothing else.
fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    out
}

/// A WebP that is the RIFF header and a VP8X chunk claiming a `w × h` canvas, nothing else.
fn webp_header(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&22u32.to_le_bytes());
    out.extend_from_slice(b"WEBPVP8X");
    out.extend_from_slice(&10u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    out.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    out
}

/// `webp` (a lossless VP8L or a lossy VP8 file) with its bitstream header patched to claim
/// 16,384 × 16,384 (VP8L) or 16,383 × 16,383 (VP8), the largest each can express.
fn webp_claiming_largest(mut webp: Vec<u8>) -> Vec<u8> {
    match &webp[12..16] {
        b"VP8L" => {
            let bits: u32 = 16_383 | (16_383 << 14);
            webp[21..25].copy_from_slice(&bits.to_le_bytes());
        }
        b"VP8 " => {
            webp[26..28].copy_from_slice(&0x3FFFu16.to_le_bytes());
            webp[28..30].copy_from_slice(&0x3FFFu16.to_le_bytes());
        }
        other => panic!("not a simple WebP: {other:?}"),
    }
    webp
}

fn assert_names_accepted_formats(e: &MediaError, case: &str) {
    let en = e.to_string();
    assert!(
        en.contains("JPEG, PNG or WebP"),
        "{case}: the message names the accepted formats: {en}"
    );
    assert!(
        e.zh().contains(ACCEPTED_ZH),
        "{case}: the Chinese message names them too: {}",
        e.zh()
    );
    assert!(e.is_bad_input(), "{case}: the input is at fault");
}

// ---------------------------------------------------------------------------------------------
// Formats.

#[test]
fn every_accepted_format_is_processed() {
    let rgba = {
        // A screenshot-like PNG with transparent corners: they become white, not black.
        let mut img = RgbaImage::from_pixel(60, 40, Rgba([20, 120, 200, 255]));
        for (x, y, p) in img.enumerate_pixels_mut() {
            if x < 10 && y < 10 {
                *p = Rgba([0, 0, 0, 0]);
            }
        }
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    };
    let gray_jpeg = {
        let img = image::DynamicImage::ImageRgb8(picture(60, 40)).into_luma8();
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Jpeg)
            .unwrap();
        out
    };
    // The image crate writes only lossless WebP; lossy WebP (what phones and browsers write) is
    // covered by two well-known 1 × 1 files: plain VP8, and VP8X with an alpha channel.
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let lossy_webp =
        hex("52494646220000005745425056503820160000003001009d012a010001000ec0fe25a400037000000000");
    let lossy_alpha_webp = hex(concat!(
        "524946464a00000057454250565038580a00000010000000000000000000414c50480c000000",
        "11071011fd0f4444ff03000056503820180000001401009d012a010001000000fe00000dc000",
        "fee6b5000000"
    ));
    // (case, bytes, format, width × height)
    type Case = (&'static str, Vec<u8>, Format, (u32, u32));
    let cases: Vec<Case> = vec![
        (
            "JPEG",
            encoded(ImageFormat::Jpeg, 60, 40),
            Format::Jpeg,
            (60, 40),
        ),
        ("grey JPEG", gray_jpeg, Format::Jpeg, (60, 40)),
        (
            "PNG",
            encoded(ImageFormat::Png, 60, 40),
            Format::Png,
            (60, 40),
        ),
        ("PNG with alpha", rgba, Format::Png, (60, 40)),
        (
            "WebP (lossless)",
            encoded(ImageFormat::WebP, 60, 40),
            Format::WebP,
            (60, 40),
        ),
        ("WebP (lossy)", lossy_webp, Format::WebP, (1, 1)),
        (
            "WebP (lossy, alpha)",
            lossy_alpha_webp,
            Format::WebP,
            (1, 1),
        ),
    ];
    for (case, bytes, format, size) in cases {
        assert_eq!(sanjin_media::sniff(&bytes).unwrap(), format, "{case}");
        let p = process(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(p.format, format, "{case}");
        assert_eq!((p.width, p.height), size, "{case}");
        assert_eq!(p.original_len, bytes.len(), "{case}");
        assert_eq!(p.hash, sanjin_media::hash(&bytes), "{case}");
        let d = decode_jpeg(&p.display);
        let t = decode_jpeg(&p.thumbnail);
        assert_eq!(
            d.dimensions(),
            size,
            "{case}: small photos are not upscaled"
        );
        assert_eq!(t.dimensions(), size, "{case}");
        if case == "PNG with alpha" {
            let corner = d.get_pixel(2, 2);
            assert!(
                corner.0.iter().all(|&c| c > 230),
                "transparent pixels are laid on white: {corner:?}"
            );
        }
    }
}

#[test]
fn format_is_detected_by_content_not_by_file_name() {
    // A PNG saved as IMG_0001.jpg, as a gallery app or a careless rename leaves it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("IMG_0001.jpg");
    std::fs::write(&path, encoded(ImageFormat::Png, 80, 60)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let p = process(&bytes, &Limits::default()).unwrap();
    assert_eq!(p.format, Format::Png);
    assert_eq!(p.format.mime(), "image/png");
    assert_eq!((p.width, p.height), (80, 60));

    // And a GIF named photo.png is refused as the GIF it is.
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let path = dir.path().join("photo.png");
    std::fs::write(&path, gif).unwrap();
    let e = process(&std::fs::read(&path).unwrap(), &Limits::default()).unwrap_err();
    assert!(
        matches!(
            e,
            MediaError::Unsupported {
                detected: Some("GIF")
            }
        ),
        "{e:?}"
    );
}

#[test]
fn other_formats_and_damaged_files_are_refused_naming_the_accepted_formats() {
    let jpeg = encoded(ImageFormat::Jpeg, 120, 90);
    let png = encoded(ImageFormat::Png, 120, 90);
    let webp = encoded(ImageFormat::WebP, 120, 90);
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 52]);
    let mut heic = vec![0, 0, 0, 0x18];
    heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    // (case, bytes, what the message should say it is; None = no particular name)
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "GIF",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            Some("GIF"),
        ),
        ("BMP", bmp, Some("BMP")),
        ("TIFF", b"II*\0\x08\0\0\0\0\0".to_vec(), Some("TIFF")),
        ("HEIC (iPhone)", heic, Some("HEIC/HEIF")),
        (
            "PDF",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec(),
            Some("PDF"),
        ),
        (
            "text",
            "委员走访记录：不是照片\n".as_bytes().to_vec(),
            Some("text"),
        ),
        (
            "random bytes",
            (0..200u32).map(|i| (i * 151 % 251) as u8 | 0x80).collect(),
            None,
        ),
        ("empty", vec![], None),
        (
            "two bytes of a JPEG",
            vec![0xFF, 0xD8],
            Some("a truncated file"),
        ),
        ("JPEG cut in half", jpeg[..jpeg.len() / 2].to_vec(), None),
        (
            "JPEG without its last bytes",
            jpeg[..jpeg.len() - 2].to_vec(),
            None,
        ),
        ("JPEG headers only", jpeg[..200].to_vec(), None),
        ("PNG cut in half", png[..png.len() / 2].to_vec(), None),
        ("PNG signature only", png[..8].to_vec(), None),
        ("WebP cut in half", webp[..webp.len() / 2].to_vec(), None),
    ];
    for (case, bytes, detected) in cases {
        let e = process(&bytes, &Limits::default())
            .err()
            .unwrap_or_else(|| panic!("{case} must be refused"));
        assert_names_accepted_formats(&e, case);
        match (&e, detected) {
            (MediaError::Unsupported { detected: d }, Some(want)) => {
                assert_eq!(*d, Some(want), "{case}");
                assert!(e.to_string().starts_with(want), "{case}: {e}");
                assert!(e.zh().contains(want), "{case}: {}", e.zh());
            }
            (MediaError::Empty, None) => assert_eq!(case, "empty"),
            (MediaError::Unsupported { detected: None }, None) => assert_eq!(case, "random bytes"),
            (MediaError::Corrupt { .. }, None) => {
                assert!(e.zh().contains("损坏或不完整"), "{case}: {}", e.zh())
            }
            _ => panic!("{case}: unexpected {e:?}"),
        }
    }
    // The exact words members read, once.
    let e = process(b"GIF89a", &Limits::default()).unwrap_err();
    assert_eq!(
        e.zh(),
        "不支持的文件格式（GIF）：只支持 JPEG、PNG、WebP 格式的照片"
    );
    assert_eq!(
        e.to_string(),
        "GIF is not an accepted photo format; only JPEG, PNG or WebP photos are accepted"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[test]
fn huge_headers_are_refused_from_the_header_without_allocating() {
    let cases: Vec<(&str, Vec<u8>, (u32, u32))> = vec![
        (
            "PNG 30,000 × 30,000",
            png_header(30_000, 30_000),
            (30_000, 30_000),
        ),
        (
            "JPEG 30,000 × 30,000",
            jpeg_header(30_000, 30_000),
            (30_000, 30_000),
        ),
        (
            "WebP 30,000 × 30,000",
            webp_header(30_000, 30_000),
            (30_000, 30_000),
        ),
        (
            "WebP lossless 16,384 × 16,384",
            webp_claiming_largest(encoded(ImageFormat::WebP, 60, 40)),
            (16_384, 16_384),
        ),
        (
            "WebP lossy 16,383 × 16,383",
            webp_claiming_largest(
                b"RIFF\x22\0\0\0WEBPVP8 \x16\0\0\0\x30\x01\0\x9d\x01\x2a\x01\0\x01\0\x0e\xc0\xfe\x25\xa4\0\x03\x70\0\0\0\0".to_vec(),
            ),
            (16_383, 16_383),
        ),
        ("PNG 20,000 px wide", png_header(20_000, 100), (20_000, 100)),
        (
            "JPEG 65,535 px high",
            jpeg_header(100, 65_535),
            (100, 65_535),
        ),
        (
            "PNG 110 megapixels",
            png_header(11_000, 10_000),
            (11_000, 10_000),
        ),
    ];
    for (case, bytes, size) in cases {
        type Step = fn(&[u8], &Limits) -> Result<(), MediaError>;
        let steps: [(&str, Step); 3] = [
            ("process", |b, l| process(b, l).map(drop)),
            ("decode", |b, l| sanjin_media::decode(b, l).map(drop)),
            ("dimensions", |b, l| {
                sanjin_media::dimensions(b, l).map(drop)
            }),
        ];
        for (step, f) in steps {
            let (r, biggest, took) = measured(|| f(&bytes, &Limits::default()));
            let e = r.err().unwrap_or_else(|| panic!("{case}: refused"));
            match &e {
                MediaError::TooLarge { size: s, .. } => assert_eq!(*s, Some(size), "{case}"),
                _ => panic!("{case} ({step}): {e:?}"),
            }
            assert!(
                biggest < 64 * 1024,
                "{case} ({step}): allocated {biggest} bytes at once"
            );
            assert!(
                took < Duration::from_millis(200),
                "{case} ({step}): took {took:?}"
            );
            let (w, h) = size;
            assert!(e.to_string().contains(&format!("{w} × {h} pixels")), "{e}");
            assert!(e.zh().contains("照片尺寸过大"), "{}", e.zh());
        }
    }
    let e = process(&png_header(30_000, 30_000), &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the photo is too large (30000 × 30000 pixels): at most 12000 pixels per side and 100 megapixels are accepted"
    );
    assert_eq!(
        e.zh(),
        "照片尺寸过大（30000 × 30000 像素）：每边最多 12000 像素，总共最多 10000 万像素"
    );
}

#[test]
fn a_decompression_bomb_is_refused_by_the_allocation_cap() {
    // 10,000 × 10,000 grey pixels, all zero: 100 MB of pixels in a file of about 100 KB. Within
    // the per-side and megapixel limits, so the allocation cap is what stops it.
    let bomb = {
        let img = image::GrayImage::new(10_000, 10_000);
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    };
    assert!(
        bomb.len() < 1_000_000,
        "a bomb is small: {} bytes",
        bomb.len()
    );
    let limits = Limits {
        max_alloc: 64 * 1024 * 1024,
        ..Limits::default()
    };
    let (r, biggest, _) = measured(|| process(&bomb, &limits));
    let e = r.unwrap_err();
    assert!(matches!(e, MediaError::TooMuchMemory { .. }), "{e:?}");
    assert!(biggest < 1024 * 1024, "allocated {biggest} bytes at once");
    assert!(e.is_bad_input());
    assert!(e.zh().contains("内存"), "{}", e.zh());

    // Files over the size limit are refused before anything is read.
    let limits = Limits {
        max_file_bytes: 1000,
        ..Limits::default()
    };
    let e = process(&encoded(ImageFormat::Png, 100, 100), &limits).unwrap_err();
    assert!(
        matches!(e, MediaError::FileTooLarge { max: 1000, .. }),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// EXIF.

/// A 40 × 20 JPEG, blue, with a red 10 × 6 block in its top-left corner, and the given EXIF.
fn marked_jpeg(spec: &ExifSpec) -> Vec<u8> {
    let img = RgbImage::from_fn(40, 20, |x, y| {
        if x < 10 && y < 6 {
            Rgb([230, 20, 20])
        } else {
            Rgb([20, 40, 220])
        }
    });
    testing::with_exif(&testing::jpeg(&img, 95), spec)
}

/// Which corner of `img` is red.
fn red_corner(img: &RgbImage) -> &'static str {
    let (w, h) = img.dimensions();
    let red = |x: u32, y: u32| {
        let p = img.get_pixel(x, y);
        p[0] > 150 && p[2] < 100
    };
    match (red(1, 1), red(w - 2, 1), red(w - 2, h - 2), red(1, h - 2)) {
        (true, false, false, false) => "top-left",
        (false, true, false, false) => "top-right",
        (false, false, true, false) => "bottom-right",
        (false, false, false, true) => "bottom-left",
        other => panic!("no single red corner: {other:?}"),
    }
}

#[test]
fn orientation_is_applied_to_the_derivatives() {
    // EXIF orientation → (shown width × height, where the stored top-left corner ends up).
    let cases = [
        (None, (40, 20), "top-left"),
        (Some(1), (40, 20), "top-left"),
        (Some(2), (40, 20), "top-right"),    // mirrored
        (Some(3), (40, 20), "bottom-right"), // turned 180°
        (Some(4), (40, 20), "bottom-left"),  // flipped vertically
        (Some(5), (20, 40), "top-left"),     // transposed
        (Some(6), (20, 40), "top-right"),    // turned 90° clockwise (phone held upright)
        (Some(7), (20, 40), "bottom-right"), // transversed
        (Some(8), (20, 40), "bottom-left"),  // turned 90° anticlockwise
        (Some(9), (40, 20), "top-left"),     // not a valid value: ignored
    ];
    for (orientation, size, corner) in cases {
        let bytes = marked_jpeg(&ExifSpec {
            orientation,
            ..ExifSpec::default()
        });
        let p = process(&bytes, &Limits::default()).unwrap();
        let case = format!("orientation {orientation:?}");
        assert_eq!(
            p.orientation,
            orientation.filter(|o| *o <= 8).unwrap_or(1) as u8,
            "{case}"
        );
        assert_eq!(
            (p.width, p.height),
            size,
            "{case}: width and height after orientation"
        );
        for (what, bytes) in [("display", &p.display), ("thumbnail", &p.thumbnail)] {
            let img = decode_jpeg(bytes);
            assert_eq!(img.dimensions(), size, "{case}: {what}");
            assert_eq!(red_corner(&img), corner, "{case}: {what}");
        }
    }
}

#[test]
fn taken_at_and_gps_are_read_back() {
    use chrono::NaiveDate;
    let at = |y, mo, d, h, mi, s| {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    };
    // (case, time written, GPS written, time read, GPS read)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<(f64, f64)>,
        Option<chrono::NaiveDateTime>,
        Option<(f64, f64)>,
    );
    let cases: Vec<Case> = vec![
        (
            "a village in the north-east (N, E)",
            Some("2025:03:14 09:26:53"),
            Some((41.796_745, 123.451_234)),
            Some(at(2025, 3, 14, 9, 26, 53)),
            Some((41.796_745, 123.451_234)),
        ),
        (
            "southern and western refs",
            None,
            Some((-33.8688, -70.6693)),
            None,
            Some((-33.8688, -70.6693)),
        ),
        (
            "time only",
            Some("2026:11:26 18:05:00"),
            None,
            Some(at(2026, 11, 26, 18, 5, 0)),
            None,
        ),
        (
            "blank time (camera without a clock)",
            Some("    :  :     :  :  "),
            None,
            None,
            None,
        ),
        (
            "impossible date",
            Some("2025:13:45 25:61:00"),
            None,
            None,
            None,
        ),
        ("no EXIF at all", None, None, None, None),
    ];
    for (case, time, gps, want_time, want_gps) in cases {
        let bytes = marked_jpeg(&ExifSpec {
            orientation: None,
            taken_at: time.map(str::to_string),
            gps,
        });
        let exif = sanjin_media::read_exif(&bytes);
        let p = process(&bytes, &Limits::default()).unwrap();
        assert_eq!(exif.taken_at, want_time, "{case}");
        assert_eq!(p.taken_at, want_time, "{case}");
        assert_eq!(exif.orientation, 1, "{case}");
        match (p.gps, want_gps) {
            (Some((lat, lon)), Some((wlat, wlon))) => {
                // Written as degrees, minutes and seconds to 1/10,000 s: about 3 mm.
                assert!(
                    (lat - wlat).abs() < 1e-7 && (lon - wlon).abs() < 1e-7,
                    "{case}: {lat}, {lon}"
                );
                assert_eq!(exif.gps.map(|g| (g.lat, g.lon)), p.gps, "{case}");
            }
            (None, None) => assert_eq!(exif.gps, None, "{case}"),
            (got, want) => panic!("{case}: GPS {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn derivatives_carry_no_exif() {
    // GPS must not leak through a thumbnail or display copy; the record carries it instead.
    let bytes = marked_jpeg(&ExifSpec {
        orientation: Some(6),
        taken_at: Some("2025:03:14 09:26:53".into()),
        gps: Some((41.8, 123.4)),
    });
    let p = process(&bytes, &Limits::default()).unwrap();
    assert!(p.gps.is_some());
    for d in [&p.thumbnail, &p.display] {
        assert!(!d.windows(4).any(|w| w == b"Exif"), "no EXIF segment");
        assert_eq!(
            sanjin_media::read_exif(d),
            sanjin_media::ExifInfo::default()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Derivatives.

#[test]
fn display_and_thumbnail_sizes() {
    // (stored w × h, EXIF orientation) → (shown w × h, display w × h, thumbnail w × h)
    let cases = [
        ((4000, 3000), None, (4000, 3000), (1600, 1200), (320, 240)),
        ((3000, 4000), None, (3000, 4000), (1200, 1600), (240, 320)),
        (
            (4000, 3000),
            Some(6),
            (3000, 4000),
            (1200, 1600),
            (240, 320),
        ),
        ((2000, 1000), None, (2000, 1000), (1600, 800), (320, 160)),
        ((1700, 1000), Some(8), (1000, 1700), (941, 1600), (188, 320)),
        ((1600, 900), None, (1600, 900), (1600, 900), (320, 180)),
        ((1000, 200), None, (1000, 200), (1000, 200), (320, 64)),
        ((300, 200), None, (300, 200), (300, 200), (300, 200)),
        ((10, 10), None, (10, 10), (10, 10), (10, 10)),
        ((1, 1), None, (1, 1), (1, 1), (1, 1)),
        ((5000, 1), None, (5000, 1), (1600, 1), (320, 1)),
    ];
    for (stored, orientation, shown, display, thumb) in cases {
        let case = format!("{stored:?} orientation {orientation:?}");
        let jpeg = testing::jpeg(&picture(stored.0, stored.1), 85);
        let bytes = testing::with_exif(
            &jpeg,
            &ExifSpec {
                orientation,
                ..ExifSpec::default()
            },
        );
        let p = process(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!((p.width, p.height), shown, "{case}");
        assert_eq!(
            decode_jpeg(&p.display).dimensions(),
            display,
            "{case}: display"
        );
        let t = decode_jpeg(&p.thumbnail);
        assert_eq!(t.dimensions(), thumb, "{case}: thumbnail");
        assert!(p.thumbnail.len() <= THUMBNAIL_MAX_BYTES, "{case}");
    }
}

#[test]
fn thumbnail_of_a_noisy_12_megapixel_photo_fits_25_kb() {
    // Heavy sensor noise (±40 per channel) on a 4000 × 3000 picture, as a JPEG of about 10 MB.
    let bytes = testing::jpeg(&testing::photo(4000, 3000, 7, 40), 85);
    let p = process(&bytes, &Limits::default()).unwrap();
    let t = decode_jpeg(&p.thumbnail);
    assert_eq!(t.width().max(t.height()), 320);
    assert_eq!(t.dimensions(), (320, 240));
    assert!(
        p.thumbnail.len() <= THUMBNAIL_MAX_BYTES,
        "{} bytes",
        p.thumbnail.len()
    );
    assert_eq!(decode_jpeg(&p.display).dimensions(), (1600, 1200));
    assert_eq!(p.original_len, bytes.len());
}

#[test]
fn thumbnail_quality_is_lowered_step_by_step_until_it_fits() {
    // Pure noise at thumbnail size is the worst case: no downscaling averages it away, and at the
    // first quality (80) it is far over 25 KB.
    let mut seed = 0x1234_5678_u32;
    let noise = RgbImage::from_fn(320, 240, |_, _| {
        let mut c = [0u8; 3];
        for v in &mut c {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *v = seed as u8;
        }
        Rgb(c)
    });
    let at_first = sanjin_media::encode_jpeg(&noise, THUMBNAIL_QUALITIES[0]).unwrap();
    assert!(
        at_first.len() > THUMBNAIL_MAX_BYTES,
        "{} bytes",
        at_first.len()
    );

    let png = testing::encode(&noise, ImageFormat::Png);
    let p = process(&png, &Limits::default()).unwrap();
    assert!(
        p.thumbnail.len() <= THUMBNAIL_MAX_BYTES,
        "{} bytes",
        p.thumbnail.len()
    );
    assert!(
        p.thumbnail_quality < THUMBNAIL_QUALITIES[0],
        "the quality went down: {}",
        p.thumbnail_quality
    );
    // It is the best quality that fits: one step up is over the limit.
    let i = THUMBNAIL_QUALITIES
        .iter()
        .position(|&q| q == p.thumbnail_quality)
        .unwrap();
    let better = sanjin_media::encode_jpeg(&noise, THUMBNAIL_QUALITIES[i - 1]).unwrap();
    assert!(better.len() > THUMBNAIL_MAX_BYTES);
    assert_eq!(decode_jpeg(&p.thumbnail).dimensions(), (320, 240));
}

// ---------------------------------------------------------------------------------------------
// Content address.

#[test]
fn hash_is_the_sha256_of_the_original_bytes() {
    // FIPS 180-2 test vectors.
    assert_eq!(
        sanjin_media::hash(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sanjin_media::hash(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let bytes = marked_jpeg(&ExifSpec::default());
    let a = process(&bytes, &Limits::default()).unwrap();
    let b = process(&bytes.clone(), &Limits::default()).unwrap();
    assert_eq!(a.hash, b.hash, "stable");
    assert_eq!(a.hash, sanjin_media::hash(&bytes), "of the original bytes");
    assert_eq!(a.hash.len(), 64);
    assert!(
        a.hash
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    );
    // Same pixels, different bytes (EXIF added): a different original, a different address.
    let with_time = marked_jpeg(&ExifSpec {
        taken_at: Some("2025:03:14 09:26:53".into()),
        ..ExifSpec::default()
    });
    let c = process(&with_time, &Limits::default()).unwrap();
    assert_ne!(a.hash, c.hash);
    assert_eq!(
        a.display, c.display,
        "the derivatives depend on the pixels only"
    );
}
