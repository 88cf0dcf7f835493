//! sanjin-media: the photos attached to records (留痕), on the device and on the server.
//!
//! **Never** does it trust a file name or a declared size, write a file, or keep EXIF in what it
//! makes.
//!
//! One entry point, [`process`]: it takes the original bytes of a photo exactly as the camera or
//! the gallery gave them and returns what a record and the sync need — the content address (the
//! SHA-256 of the original bytes), the format detected by content, the size after orientation,
//! EXIF taken-at time, GPS and orientation, a thumbnail (long side 320 px, JPEG ≤ 25 KB) and a
//! display copy (long side 1600 px, JPEG). The smaller steps are public too: [`sniff`],
//! [`dimensions`], [`decode`], [`read_exif`], [`hash`].
//!
//! Untrusted input is the normal case (a server receives whatever a device sends), so:
//! - the format is detected from the first bytes, never from a file name, and only JPEG, PNG and
//!   WebP are accepted; anything else is refused with a message naming the accepted formats;
//! - the dimensions are read from the header before anything is decoded and checked against
//!   [`Limits`] (per side and in total), and the decoder gets the same limits plus an allocation
//!   cap, so a decompression bomb or a 30,000 × 30,000 header is an error, not an OOM kill;
//! - a JPEG must be complete (its markers are walked to the end-of-image marker), because the
//!   decoder would otherwise paint a half-received photo grey and accept it.
//!
//! Derivatives never carry EXIF (no GPS leaks through a thumbnail); the orientation is applied to
//! their pixels instead. Sans-IO like `sanjin-core`: bytes in, bytes out.

use std::fmt;
use std::io::Cursor;

use chrono::{NaiveDate, NaiveDateTime};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

/// The image crate as this crate uses it (its types appear in [`fit`] and [`decode`]).
pub use image;

pub mod testing;

/// The formats a photo may have, in the words of every refusal.
pub const ACCEPTED: &str = "JPEG, PNG or WebP";
/// The same, as members read it.
pub const ACCEPTED_ZH: &str = "只支持 JPEG、PNG、WebP 格式的照片";

/// Long side of a thumbnail, in pixels.
pub const THUMBNAIL_LONG_SIDE: u32 = 320;
/// Largest thumbnail, in bytes: it travels inside the ordinary record sync over 2G links.
pub const THUMBNAIL_MAX_BYTES: usize = 25 * 1024;
/// JPEG qualities tried for a thumbnail, best first, until one fits [`THUMBNAIL_MAX_BYTES`].
pub const THUMBNAIL_QUALITIES: &[u8] = &[80, 70, 60, 50, 40, 30, 20, 10];
/// Long side of the display copy, in pixels (never upscaled).
pub const DISPLAY_LONG_SIDE: u32 = 1600;
/// JPEG quality of the display copy.
pub const DISPLAY_QUALITY: u8 = 82;

/// What a photo may cost to decode. [`Limits::default`] suits phone photos: 12,000 px per side,
/// 100 megapixels, 512 MiB for the decoded pixels, files up to 64 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest width and height, in pixels.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Largest allocation the decoder may make for the pixels (and its own buffers).
    pub max_alloc: u64,
    /// Largest original file, in bytes.
    pub max_file_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_side: 12_000,
            max_pixels: 100_000_000,
            max_alloc: 512 * 1024 * 1024,
            max_file_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    fn to_image(self) -> image::Limits {
        let mut l = image::Limits::default();
        l.max_image_width = Some(self.max_side);
        l.max_image_height = Some(self.max_side);
        l.max_alloc = Some(self.max_alloc);
        l
    }

    fn check(&self, width: u32, height: u32) -> Result<(), MediaError> {
        if width > self.max_side
            || height > self.max_side
            || u64::from(width) * u64::from(height) > self.max_pixels
        {
            return Err(MediaError::TooLarge {
                size: Some((width, height)),
                max_side: self.max_side,
                max_pixels: self.max_pixels,
            });
        }
        Ok(())
    }
}

/// An accepted photo format, detected by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
}

impl Format {
    /// `JPEG`, `PNG`, `WebP`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::WebP => "WebP",
        }
    }

    /// The media type, e.g. `image/jpeg`.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::WebP => "image/webp",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::WebP => "webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::WebP => ImageFormat::WebP,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a photo was refused or could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the file is empty; only {ACCEPTED} photos are accepted")]
    Empty,
    /// Not one of the accepted formats. `detected` names what it looks like, where known
    /// (`GIF`, `BMP`, `TIFF`, `HEIC/HEIF`, `AVIF`, `PDF`, `text`, …).
    #[error("{} is not an accepted photo format; only {ACCEPTED} photos are accepted", detected.unwrap_or("this file"))]
    Unsupported { detected: Option<&'static str> },
    /// An accepted format, but damaged or incomplete (for example cut off during a transfer).
    #[error(
        "the {format} photo is damaged or incomplete ({detail}); only complete {ACCEPTED} photos are accepted"
    )]
    Corrupt { format: Format, detail: String },
    /// The header's dimensions are over the [`Limits`].
    #[error(
        "the photo is too large{}: at most {max_side} pixels per side and {} megapixels are accepted",
        size.map(|(w, h)| format!(" ({w} × {h} pixels)")).unwrap_or_default(),
        max_pixels / 1_000_000
    )]
    TooLarge {
        /// Width and height as the header claims them, where known.
        size: Option<(u32, u32)>,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("the photo file is too large: {len} bytes (at most {max} bytes)")]
    FileTooLarge { len: usize, max: usize },
    /// Decoding would need more memory than [`Limits::max_alloc`].
    #[error("decoding the photo would need more than {max_alloc} bytes of memory")]
    TooMuchMemory { max_alloc: u64 },
    /// Making a derivative failed (not the input's fault).
    #[error("could not encode the {what}: {detail}")]
    Encode { what: &'static str, detail: String },
}

impl MediaError {
    /// The message in Simplified Chinese, for members.
    pub fn zh(&self) -> String {
        match self {
            MediaError::Empty => format!("文件是空的：{ACCEPTED_ZH}"),
            MediaError::Unsupported {
                detected: Some(what),
            } => {
                format!("不支持的文件格式（{what}）：{ACCEPTED_ZH}")
            }
            MediaError::Unsupported { detected: None } => {
                format!("不支持的文件格式：{ACCEPTED_ZH}")
            }
            MediaError::Corrupt { format, .. } => format!(
                "{format} 照片已损坏或不完整，请重新拍摄或重新选择；{ACCEPTED_ZH}，且文件须完整"
            ),
            MediaError::TooLarge {
                size,
                max_side,
                max_pixels,
            } => format!(
                "照片尺寸过大{}：每边最多 {max_side} 像素，总共最多 {} 万像素",
                size.map(|(w, h)| format!("（{w} × {h} 像素）"))
                    .unwrap_or_default(),
                max_pixels / 10_000
            ),
            MediaError::FileTooLarge { len, max } => format!(
                "照片文件过大（{:.1} MB）：最大 {:.0} MB",
                *len as f64 / 1_048_576.0,
                *max as f64 / 1_048_576.0
            ),
            MediaError::TooMuchMemory { max_alloc } => format!(
                "照片解码需要的内存超过 {} MB，请换一张较小的照片",
                max_alloc / 1_048_576
            ),
            MediaError::Encode { what, detail } => {
                format!(
                    "生成{}失败：{detail}",
                    if *what == "thumbnail" {
                        "缩略图"
                    } else {
                        "显示图"
                    }
                )
            }
        }
    }

    /// True when the input is at fault (exit code 2, HTTP 4xx); false for an internal failure.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, MediaError::Encode { .. })
    }
}

/// GPS position from EXIF, in signed decimal degrees (south and west negative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
}

/// What EXIF says about a photo. Missing or unreadable EXIF gives the defaults: no time, no GPS,
/// orientation 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExifInfo {
    /// DateTimeOriginal (else DateTime), the camera's wall clock, no time zone.
    pub taken_at: Option<NaiveDateTime>,
    pub gps: Option<Gps>,
    /// EXIF orientation 1..=8 (1 = upright); 0 never occurs, unknown values read as 1.
    pub orientation: u8,
}

impl Default for ExifInfo {
    fn default() -> Self {
        ExifInfo {
            taken_at: None,
            gps: None,
            orientation: 1,
        }
    }
}

/// A processed photo: everything a record and the sync need.
#[derive(Debug, Clone)]
pub struct Processed {
    /// SHA-256 of the original bytes, lowercase hex: the content address.
    pub hash: String,
    pub format: Format,
    /// Width and height as shown, i.e. after the EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub taken_at: Option<NaiveDateTime>,
    /// (latitude, longitude) in signed degrees.
    pub gps: Option<(f64, f64)>,
    /// EXIF orientation of the original (1..=8), already applied to the derivatives.
    pub orientation: u8,
    /// JPEG, long side ≤ 320 px, ≤ [`THUMBNAIL_MAX_BYTES`].
    pub thumbnail: Vec<u8>,
    /// JPEG quality the thumbnail fitted at (see [`THUMBNAIL_QUALITIES`]).
    pub thumbnail_quality: u8,
    /// JPEG, long side ≤ 1600 px.
    pub display: Vec<u8>,
    pub original_len: usize,
}

/// SHA-256 of `bytes`, lowercase hex (64 characters).
pub fn hash(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// The format of `bytes` by content (magic bytes); the file name plays no part.
pub fn sniff(bytes: &[u8]) -> Result<Format, MediaError> {
    let b = bytes;
    if b.is_empty() {
        return Err(MediaError::Empty);
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Ok(Format::WebP);
    }
    Err(MediaError::Unsupported {
        detected: what_is_it(b),
    })
}

/// Names common formats that are refused, for a clearer message.
fn what_is_it(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("GIF")
    } else if b.starts_with(b"BM") {
        Some("BMP")
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        Some("TIFF")
    } else if b.starts_with(b"%PDF") {
        Some("PDF")
    } else if b.len() >= 12 && &b[4..8] == b"ftyp" {
        match &b[8..12] {
            b"avif" | b"avis" => Some("AVIF"),
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"mif1" | b"msf1" | b"heim" | b"heis" => {
                Some("HEIC/HEIF")
            }
            _ => Some("video"),
        }
    } else if b.starts_with(b"PK\x03\x04") {
        Some("ZIP")
    } else if b.starts_with(b"RIFF") {
        Some("RIFF (not WebP)")
    } else if b.starts_with(&[0xFF, 0xD8]) || b.starts_with(b"\x89PN") {
        Some("a truncated file")
    } else if std::str::from_utf8(&b[..b.len().min(512)]).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || c.is_whitespace() || c == '\u{feff}')
    }) {
        Some("text")
    } else {
        None
    }
}

fn check_len(bytes: &[u8], limits: &Limits) -> Result<(), MediaError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(MediaError::FileTooLarge {
            len: bytes.len(),
            max: limits.max_file_bytes,
        });
    }
    Ok(())
}

fn image_error(format: Format, limits: &Limits, e: ImageError) -> MediaError {
    match e {
        ImageError::Limits(l) => match l.kind() {
            image::error::LimitErrorKind::DimensionError => MediaError::TooLarge {
                size: None,
                max_side: limits.max_side,
                max_pixels: limits.max_pixels,
            },
            _ => MediaError::TooMuchMemory {
                max_alloc: limits.max_alloc,
            },
        },
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            MediaError::Corrupt {
                format,
                detail: "the file ends too early".into(),
            }
        }
        ImageError::Unsupported(e) => MediaError::Corrupt {
            format,
            detail: format!("a variant this decoder cannot read: {e}"),
        },
        e => MediaError::Corrupt {
            format,
            detail: e.to_string(),
        },
    }
}

/// Checks size, format and header dimensions, then opens the image crate's decoder with the
/// limits (which checks the dimensions again, the decoder's own way).
fn open(bytes: &[u8], limits: &Limits) -> Result<(Format, impl ImageDecoder), MediaError> {
    check_len(bytes, limits)?;
    let format = sniff(bytes)?;
    // Our own header reading first: it needs no decoder (a JPEG decoder would copy the whole
    // file first), and it reports the dimensions a bomb claims.
    if let Some((w, h)) = header_dimensions(format, bytes) {
        limits.check(w, h)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(limits.to_image());
    let decoder = reader
        .into_decoder()
        .map_err(|e| image_error(format, limits, e))?;
    let (w, h) = decoder.dimensions();
    limits.check(w, h)?;
    Ok((format, decoder))
}

/// Reads the format and the stored (not yet oriented) width and height from the header alone,
/// and checks them against `limits`. No pixels are decoded.
pub fn dimensions(bytes: &[u8], limits: &Limits) -> Result<(Format, u32, u32), MediaError> {
    let (format, decoder) = open(bytes, limits)?;
    let (w, h) = decoder.dimensions();
    Ok((format, w, h))
}

/// Decodes a photo within `limits` (dimensions checked from the header first, the decoder's
/// allocations capped). The pixels are as stored: the EXIF orientation is not applied.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<DynamicImage, MediaError> {
    decode_with_format(bytes, limits).map(|(_, image)| image)
}

fn decode_with_format(bytes: &[u8], limits: &Limits) -> Result<(Format, DynamicImage), MediaError> {
    let (format, decoder) = open(bytes, limits)?;
    if format == Format::Jpeg {
        jpeg_complete(bytes).map_err(|detail| MediaError::Corrupt {
            format,
            detail: detail.into(),
        })?;
    }
    if decoder.total_bytes() > limits.max_alloc {
        return Err(MediaError::TooMuchMemory {
            max_alloc: limits.max_alloc,
        });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(format, limits, e))?;
    Ok((format, image))
}

/// Reads taken-at time, GPS and orientation from the photo's EXIF (JPEG APP1, PNG eXIf, WebP
/// EXIF chunk). Best effort: no EXIF, or EXIF that cannot be read, gives [`ExifInfo::default`]
/// (orientation 1).
pub fn read_exif(bytes: &[u8]) -> ExifInfo {
    let mut info = ExifInfo::default();
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return info;
    };
    use exif::{In, Tag, Value};
    let field = |tag| exif.get_field(tag, In::PRIMARY).map(|f| &f.value);
    if let Some(o) = field(Tag::Orientation).and_then(|v| v.get_uint(0))
        && (1..=8).contains(&o)
    {
        info.orientation = o as u8;
    }
    info.taken_at = [Tag::DateTimeOriginal, Tag::DateTimeDigitized, Tag::DateTime]
        .into_iter()
        .find_map(|tag| match field(tag) {
            Some(Value::Ascii(v)) => v.first().and_then(|s| exif_time(s)),
            _ => None,
        });
    let degrees = |tag| match field(tag) {
        Some(Value::Rational(v)) if v.len() == 3 && v.iter().all(|r| r.denom != 0) => {
            Some(v[0].to_f64() + v[1].to_f64() / 60.0 + v[2].to_f64() / 3600.0)
        }
        Some(Value::Rational(v)) if v.len() == 1 && v[0].denom != 0 => Some(v[0].to_f64()),
        _ => None,
    };
    let reference = |tag| match field(tag) {
        Some(Value::Ascii(v)) => v.first().and_then(|s| s.first().copied()),
        _ => None,
    };
    if let (Some(lat), Some(lon)) = (degrees(Tag::GPSLatitude), degrees(Tag::GPSLongitude)) {
        let lat = match reference(Tag::GPSLatitudeRef) {
            Some(b'S' | b's') => -lat,
            _ => lat,
        };
        let lon = match reference(Tag::GPSLongitudeRef) {
            Some(b'W' | b'w') => -lon,
            _ => lon,
        };
        if lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0 {
            info.gps = Some(Gps { lat, lon });
        }
    }
    info
}

fn exif_time(s: &[u8]) -> Option<NaiveDateTime> {
    let t = exif::DateTime::from_ascii(s).ok()?;
    NaiveDate::from_ymd_opt(i32::from(t.year), u32::from(t.month), u32::from(t.day))?.and_hms_opt(
        u32::from(t.hour),
        u32::from(t.minute),
        u32::from(t.second),
    )
}

/// Checks and decodes `original`, reads its EXIF, and makes both derivatives with the orientation
/// applied; see the crate documentation. The same bytes always give the same result.
pub fn process(original: &[u8], limits: &Limits) -> Result<Processed, MediaError> {
    let (format, image) = decode_with_format(original, limits)?;
    let hash = hash(original);
    let (stored_w, stored_h) = (image.width(), image.height());
    let exif = read_exif(original);
    // EXIF orientations 5..=8 turn the picture by a quarter: width and height swap.
    let (width, height) = if exif.orientation >= 5 {
        (stored_h, stored_w)
    } else {
        (stored_w, stored_h)
    };
    let orientation = Orientation::from_exif(exif.orientation).unwrap_or(Orientation::NoTransforms);

    // Resize first, orient second: orientation commutes with scaling (the long side is the same
    // either way), and turning a 1600 px copy is ~8× cheaper than turning the 12 MP original.
    let stored = flatten(image);
    let mut display = DynamicImage::ImageRgb8(fit(&stored, DISPLAY_LONG_SIDE));
    drop(stored);
    display.apply_orientation(orientation);
    let display = display.into_rgb8();
    let thumb = fit(&display, THUMBNAIL_LONG_SIDE);
    let (thumbnail, thumbnail_quality) =
        encode_jpeg_within(&thumb, THUMBNAIL_MAX_BYTES, THUMBNAIL_QUALITIES)?;
    let display_bytes =
        encode_jpeg(&display, DISPLAY_QUALITY).map_err(|detail| MediaError::Encode {
            what: "display copy",
            detail,
        })?;
    Ok(Processed {
        hash,
        format,
        width,
        height,
        taken_at: exif.taken_at,
        gps: exif.gps.map(|g| (g.lat, g.lon)),
        orientation: exif.orientation,
        thumbnail,
        thumbnail_quality,
        display: display_bytes,
        original_len: original.len(),
    })
}

/// Any decoded image as RGB8; transparent pixels are laid on white (a screenshot's transparent
/// corners must not turn black in a JPEG).
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(p[3]);
        for c in 0..3 {
            o[c] = ((u32::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// Scales `image` down so its long side is at most `long_side`; never up.
pub fn fit(image: &RgbImage, long_side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    if w.max(h) <= long_side {
        return image.clone();
    }
    let (nw, nh) = if w >= h {
        (
            long_side,
            ((u64::from(h) * u64::from(long_side) + u64::from(w) / 2) / u64::from(w)).max(1) as u32,
        )
    } else {
        (
            ((u64::from(w) * u64::from(long_side) + u64::from(h) / 2) / u64::from(h)).max(1) as u32,
            long_side,
        )
    };
    if w.max(h) >= 2 * long_side {
        // Area averaging: every source pixel counts once; right for large factors and twice as
        // fast as a triangle filter on a 12 MP photo.
        image::imageops::thumbnail(image, nw, nh)
    } else {
        // Close to the target size area averaging would alias; a triangle filter is cheap here.
        image::imageops::resize(image, nw, nh, FilterType::Triangle)
    }
}

/// Encodes `image` as a baseline JPEG at `quality` (1..=100).
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Encodes `image` as JPEG at the first of `qualities` whose output fits `max_bytes`; returns the
/// bytes and the quality used.
pub fn encode_jpeg_within(
    image: &RgbImage,
    max_bytes: usize,
    qualities: &[u8],
) -> Result<(Vec<u8>, u8), MediaError> {
    let mut smallest = usize::MAX;
    for &q in qualities {
        let out = encode_jpeg(image, q).map_err(|detail| MediaError::Encode {
            what: "thumbnail",
            detail,
        })?;
        if out.len() <= max_bytes {
            return Ok((out, q));
        }
        smallest = smallest.min(out.len());
    }
    Err(MediaError::Encode {
        what: "thumbnail",
        detail: format!("{smallest} bytes at the lowest quality, over the limit of {max_bytes}"),
    })
}

/// Width and height from the header bytes, without any decoder; `None` where the header is not
/// where this simple reader looks (the image crate's reading then decides).
fn header_dimensions(format: Format, b: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| {
        Some(u32::from(u16::from_be_bytes(
            b.get(i..i + 2)?.try_into().ok()?,
        )))
    };
    let be32 = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let le16 = |i: usize| {
        Some(u32::from(u16::from_le_bytes(
            b.get(i..i + 2)?.try_into().ok()?,
        )))
    };
    let le24 = |i: usize| {
        let s = b.get(i..i + 3)?;
        Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
    };
    match format {
        // Signature, then IHDR: length, "IHDR", width, height.
        Format::Png if b.get(12..16) == Some(b"IHDR") => Some((be32(16)?, be32(20)?)),
        Format::Png => None,
        Format::Jpeg => {
            let mut i = 2;
            loop {
                while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
                    i += 1;
                }
                if *b.get(i)? != 0xFF {
                    return None;
                }
                let m = *b.get(i + 1)?;
                match m {
                    0xD0..=0xD7 | 0x01 => i += 2,
                    0xD9 | 0xDA => return None,
                    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
                    0xC0..=0xCF if !matches!(m, 0xC4 | 0xC8 | 0xCC) => {
                        return Some((be16(i + 7)?, be16(i + 5)?));
                    }
                    _ => i += 2 + be16(i + 2)? as usize,
                }
            }
        }
        Format::WebP => match b.get(12..16)? {
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            b"VP8L" if b.get(20) == Some(&0x2F) => {
                let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
            b"VP8 " if b.get(23..26) == Some(&[0x9D, 0x01, 0x2A]) => {
                Some((le16(26)? & 0x3FFF, le16(28)? & 0x3FFF))
            }
            _ => None,
        },
    }
}

/// Walks a JPEG's markers to its end-of-image marker: a file cut off in a transfer ends inside a
/// scan, and the decoder (lenient by design) would otherwise fill the rest with grey and accept it.
fn jpeg_complete(b: &[u8]) -> Result<(), &'static str> {
    const CUT: &str = "the file ends before its end-of-image marker";
    let len = |i: usize| -> Result<usize, &'static str> {
        let s = b.get(i..i + 2).ok_or(CUT)?;
        Ok(usize::from(u16::from_be_bytes([s[0], s[1]])))
    };
    let mut i = 2;
    loop {
        // Markers may be padded with any number of 0xFF fill bytes.
        if *b.get(i).ok_or(CUT)? != 0xFF {
            return Err("bytes where a marker should be");
        }
        while b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let m = *b.get(i + 1).ok_or(CUT)?;
        i += 2;
        match m {
            0xD9 => return Ok(()),
            0xD0..=0xD7 | 0x01 => {}
            0xDA => {
                i += len(i)?;
                // Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte) or a restart
                // marker inside a scan; anything else is the next marker.
                loop {
                    let Some(p) = b.get(i..).and_then(|s| s.iter().position(|&x| x == 0xFF)) else {
                        return Err(CUT);
                    };
                    i += p;
                    match b.get(i + 1) {
                        None => return Err(CUT),
                        Some(0x00 | 0xD0..=0xD7) => i += 2,
                        Some(_) => break,
                    }
                }
            }
            _ => {
                let l = len(i)?;
                if l < 2 {
                    return Err("a segment with an impossible length");
                }
                i += l;
            }
        }
    }
}
