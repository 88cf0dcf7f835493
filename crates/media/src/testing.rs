//! Synthetic photos for tests and benchmarks (no committed binaries): deterministic pictures
//! with the statistics of a phone photo, and a JPEG EXIF writer for orientation, time and GPS.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

/// A deterministic `width × height` picture: smooth gradients and soft waves (sky, walls), a
/// mottled texture of 8-pixel cells (foliage, brick; it survives downscaling, so derivatives have
/// realistic sizes) and sensor-like noise of amplitude `noise` (0 = none; 6 gives phone-photo
/// JPEG sizes). Same `seed`, same pixels.
pub fn photo(width: u32, height: u32, seed: u64, noise: u8) -> RgbImage {
    const CELL: u32 = 8;
    let mut rng = Rng::new(seed);
    let (gw, gh) = (width / CELL + 2, height / CELL + 2);
    let grid: Vec<f32> = (0..gw * gh)
        .map(|_| (rng.next() % 61) as f32 - 30.0)
        .collect();
    let texture = |x: u32, y: u32| {
        let (cx, cy) = ((x / CELL) as usize, (y / CELL) as usize);
        let (fx, fy) = (
            (x % CELL) as f32 / CELL as f32,
            (y % CELL) as f32 / CELL as f32,
        );
        let g = |cx: usize, cy: usize| grid[cy * gw as usize + cx];
        let top = g(cx, cy) * (1.0 - fx) + g(cx + 1, cy) * fx;
        let bottom = g(cx, cy + 1) * (1.0 - fx) + g(cx + 1, cy + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    };
    let (wf, hf) = (width.max(1) as f32, height.max(1) as f32);
    let phase = (rng.next() % 1000) as f32 / 159.0;
    // Per-column and per-row waves, computed once.
    let cols: Vec<f32> = (0..width)
        .map(|x| (x as f32 / wf * 9.0 + phase).sin() * 28.0)
        .collect();
    let rows: Vec<f32> = (0..height)
        .map(|y| (y as f32 / hf * 7.0 - phase).cos() * 22.0)
        .collect();
    let amp = i32::from(noise);
    let mut img = RgbImage::new(width, height);
    for (y, row) in img.rows_mut().enumerate() {
        let fy = y as f32 / hf;
        let wy = rows[y];
        for (x, p) in row.enumerate() {
            let fx = x as f32 / wf;
            let wave = cols[x] + wy + texture(x as u32, y as u32);
            let r = 60.0 + 140.0 * fx + wave;
            let g = 90.0 + 100.0 * fy + 0.5 * wave;
            let b = 180.0 - 90.0 * fy + 40.0 * fx - wave;
            let n = if amp > 0 {
                let v = rng.next();
                [
                    (v & 0xFF) as i32 * (2 * amp + 1) / 256 - amp,
                    ((v >> 8) & 0xFF) as i32 * (2 * amp + 1) / 256 - amp,
                    ((v >> 16) & 0xFF) as i32 * (2 * amp + 1) / 256 - amp,
                ]
            } else {
                [0; 3]
            };
            *p = Rgb([
                (r as i32 + n[0]).clamp(0, 255) as u8,
                (g as i32 + n[1]).clamp(0, 255) as u8,
                (b as i32 + n[2]).clamp(0, 255) as u8,
            ]);
        }
    }
    img
}

/// Encodes `image` as JPEG at `quality`.
pub fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    crate::encode_jpeg(image, quality).expect("encoding to memory cannot fail")
}

/// Encodes `image` as PNG or WebP (lossless), or JPEG at the encoder's default quality.
pub fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .expect("encoding to memory cannot fail");
    out
}

/// What to write into a JPEG's EXIF.
#[derive(Debug, Clone, Default)]
pub struct ExifSpec {
    /// 1..=8.
    pub orientation: Option<u16>,
    /// `YYYY:MM:DD HH:MM:SS`, written as DateTimeOriginal.
    pub taken_at: Option<String>,
    /// Signed degrees (latitude, longitude), written as degrees/minutes/seconds with N/S, E/W.
    pub gps: Option<(f64, f64)>,
}

/// `jpeg` with an EXIF APP1 segment (little-endian TIFF) spliced in right after SOI.
pub fn with_exif(jpeg: &[u8], spec: &ExifSpec) -> Vec<u8> {
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let tiff = tiff_block(spec);
    let mut out = Vec::with_capacity(jpeg.len() + tiff.len() + 10);
    out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE1]);
    out.extend_from_slice(
        &u16::try_from(2 + 6 + tiff.len())
            .expect("small")
            .to_be_bytes(),
    );
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// One IFD entry: tag, type (2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL), count, value bytes.
struct Entry(u16, u16, u32, Vec<u8>);

/// A TIFF block: header, IFD0 (orientation, pointers), Exif IFD (time), GPS IFD.
pub fn tiff_block(spec: &ExifSpec) -> Vec<u8> {
    let ascii = |s: &str| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    };
    let rational3 = |deg: f64| {
        let d = deg.abs();
        let whole = d.trunc();
        let min = ((d - whole) * 60.0).trunc();
        let sec = ((d - whole) * 60.0 - min) * 60.0;
        let mut v = Vec::new();
        for (n, den) in [
            (whole as u32, 1u32),
            (min as u32, 1),
            ((sec * 10_000.0).round() as u32, 10_000),
        ] {
            v.extend_from_slice(&n.to_le_bytes());
            v.extend_from_slice(&den.to_le_bytes());
        }
        v
    };
    let mut ifd0 = Vec::new();
    if let Some(o) = spec.orientation {
        ifd0.push(Entry(0x0112, 3, 1, o.to_le_bytes().to_vec()));
    }
    let mut exif_ifd = Vec::new();
    if let Some(t) = &spec.taken_at {
        exif_ifd.push(Entry(0x9003, 2, 20, ascii(t)));
    }
    let mut gps_ifd = Vec::new();
    if let Some((lat, lon)) = spec.gps {
        gps_ifd.push(Entry(1, 2, 2, ascii(if lat < 0.0 { "S" } else { "N" })));
        gps_ifd.push(Entry(2, 5, 3, rational3(lat)));
        gps_ifd.push(Entry(3, 2, 2, ascii(if lon < 0.0 { "W" } else { "E" })));
        gps_ifd.push(Entry(4, 5, 3, rational3(lon)));
    }
    // Layout: header (8) | IFD0 | Exif IFD | GPS IFD, each IFD followed by its out-of-line data.
    let ifd_len = |n: usize, e: &[Entry]| {
        2 + 12 * n
            + 4
            + e.iter()
                .map(|x| if x.3.len() > 4 { x.3.len() } else { 0 })
                .sum::<usize>()
    };
    let n0 = ifd0.len() + usize::from(!exif_ifd.is_empty()) + usize::from(!gps_ifd.is_empty());
    let off0 = 8usize;
    let off_exif = off0 + ifd_len(n0, &ifd0);
    let off_gps = off_exif
        + if exif_ifd.is_empty() {
            0
        } else {
            ifd_len(exif_ifd.len(), &exif_ifd)
        };
    if !exif_ifd.is_empty() {
        ifd0.push(Entry(
            0x8769,
            4,
            1,
            (off_exif as u32).to_le_bytes().to_vec(),
        ));
    }
    if !gps_ifd.is_empty() {
        ifd0.push(Entry(0x8825, 4, 1, (off_gps as u32).to_le_bytes().to_vec()));
    }
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&(off0 as u32).to_le_bytes());
    for ifd in [ifd0, exif_ifd, gps_ifd] {
        if ifd.is_empty() {
            continue;
        }
        let start = out.len();
        let mut data_off = start + 2 + 12 * ifd.len() + 4;
        let mut data = Vec::new();
        out.extend_from_slice(&(ifd.len() as u16).to_le_bytes());
        for Entry(tag, ty, count, value) in &ifd {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            if value.len() <= 4 {
                let mut v = value.clone();
                v.resize(4, 0);
                out.extend_from_slice(&v);
            } else {
                out.extend_from_slice(&(data_off as u32).to_le_bytes());
                data.extend_from_slice(value);
                data_off += value.len();
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// xorshift64*: deterministic, fast, good enough for noise.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
