//! `sanjin-bench media`: photo processing (issue 4), per 12-megapixel photo.
//!
//! The photo is generated (`sanjin_media::testing::photo`: gradients, soft waves and sensor-like
//! noise, 4000 × 3000) and encoded as JPEG at quality 90, so its size is that of a phone photo.
//! Each run times the steps of `sanjin_media::process` one by one on the same input:
//!
//! - `hash_ms`: SHA-256 of the original bytes (the content address);
//! - `decode_ms`: header checks, the JPEG completeness walk and the decode to pixels;
//! - `display_ms`: scaling the decoded picture to the display copy (long side 1600) and encoding
//!   it as JPEG;
//! - `thumbnail_ms`: scaling the display copy to the thumbnail (long side 320) and encoding it as
//!   JPEG within 25 KB;
//! - `process_ms`: the whole of `process` (all of the above plus EXIF), as the device and the
//!   server call it.
//!
//! One JSON line, scenario `media`, each figure the median of `--samples` runs (5 by default).

use std::time::Instant;

use anyhow::{Result, ensure};
use sanjin_media::{Limits, testing};
use serde_json::{Value, json};

use crate::{percentile, round};

const WIDTH: u32 = 4000;
const HEIGHT: u32 = 3000;
const QUALITY: u8 = 90;

/// `sanjin-bench media` (and the `media` scenario of `weak-link`): how many runs.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct MediaArgs {
    /// Runs per figure (the median is reported; at least 1).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub samples: usize,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    round(percentile(&v, 0.5))
}

pub fn run(args: &MediaArgs, emit: &mut dyn FnMut(Value)) -> Result<()> {
    let samples = args.samples.max(1);
    eprintln!("generating a {WIDTH} × {HEIGHT} photo …");
    let original = testing::jpeg(&testing::photo(WIDTH, HEIGHT, 2026, 6), QUALITY);
    let limits = Limits::default();
    let (mut hash, mut decode, mut display, mut thumb, mut process) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut out = None;
    for i in 0..samples {
        eprintln!("run {} of {samples} …", i + 1);
        let t = Instant::now();
        let h = sanjin_media::hash(&original);
        hash.push(ms_since(t));

        let t = Instant::now();
        let image = sanjin_media::decode(&original, &limits)?.into_rgb8();
        decode.push(ms_since(t));

        let t = Instant::now();
        let d = sanjin_media::fit(&image, sanjin_media::DISPLAY_LONG_SIDE);
        let display_bytes = sanjin_media::encode_jpeg(&d, sanjin_media::DISPLAY_QUALITY)
            .map_err(anyhow::Error::msg)?;
        display.push(ms_since(t));
        drop(image);

        let t = Instant::now();
        let th = sanjin_media::fit(&d, sanjin_media::THUMBNAIL_LONG_SIDE);
        let (thumb_bytes, _) = sanjin_media::encode_jpeg_within(
            &th,
            sanjin_media::THUMBNAIL_MAX_BYTES,
            sanjin_media::THUMBNAIL_QUALITIES,
        )?;
        thumb.push(ms_since(t));

        let t = Instant::now();
        let p = sanjin_media::process(&original, &limits)?;
        process.push(ms_since(t));
        ensure!(p.hash == h, "process hashed differently");
        ensure!(p.display == display_bytes && p.thumbnail == thumb_bytes);
        out = Some(p);
    }
    let p = out.expect("at least one run");
    emit(json!({
        "bench": "media",
        "scenario": "media",
        "samples": samples,
        "width": WIDTH,
        "height": HEIGHT,
        "megapixels": f64::from(WIDTH * HEIGHT) / 1e6,
        "original_quality": QUALITY,
        "original_bytes": original.len(),
        "hash_ms": median(hash),
        "decode_ms": median(decode),
        "display_ms": median(display),
        "thumbnail_ms": median(thumb),
        "process_ms": median(process),
        "display_bytes": p.display.len(),
        "display_quality": sanjin_media::DISPLAY_QUALITY,
        "thumbnail_bytes": p.thumbnail.len(),
        "thumbnail_quality": p.thumbnail_quality,
        "thumbnail_max_bytes": sanjin_media::THUMBNAIL_MAX_BYTES,
    }));
    Ok(())
}
