//! Issue 6: the bridge from a foreign language. Generates UniFFI's Python bindings from the
//! cdylib this build produced, starts a real sync server on loopback (HTTPS with its
//! self-signed certificate, which the devices pin) with the committed city fixtures, and runs
//! `python3 -m pytest mobile-bridge/tests/python`. A missing python3 or pytest fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sanjin_server::{Config, ServerData, TlsMode};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cdylib built with this test (`target/<profile>/deps` or its parent).
fn cdylib() -> PathBuf {
    let name = format!(
        "{}sanjin_mobile_bridge{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps.join(&name), deps.parent().unwrap().join(&name)]
        .into_iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("{name} not found next to {}", exe.display()))
}

/// Python bindings plus the library they load, in `dir`.
fn generate_python(dir: &Path) {
    let lib = cdylib();
    let out = camino::Utf8PathBuf::from_path_buf(dir.to_path_buf()).unwrap();
    let source = camino::Utf8PathBuf::from_path_buf(lib.clone()).unwrap();
    uniffi::generate(uniffi::GenerateOptions {
        languages: vec![uniffi::TargetLanguage::Python],
        source,
        out_dir: out,
        config_override: None,
        format: false,
        crate_filter: None,
        metadata_no_deps: true,
    })
    .expect("generate the Python bindings");
    std::fs::copy(&lib, dir.join(lib.file_name().unwrap())).unwrap();
    assert!(dir.join("sanjin_mobile_bridge.py").is_file());
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Issue 13: the office staff account the Python tests sign in to the console with.
const STAFF: (&str, &str) = ("office-01", "console-pass-13");

#[test]
fn issue_6_python_drives_the_bridge_against_a_real_server() {
    let check = Command::new(python())
        .args(["-m", "pytest", "--version"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for this test ({e}); install Python 3"));
    assert!(
        check.status.success(),
        "pytest is required for this test: python3 -m pip install pytest\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    let bindings = tmp.path().join("bindings");
    generate_python(&bindings);

    // The server: the city's directory, one-time codes for group-01's members and its leader.
    let data_dir = tmp.path().join("server");
    let mut codes: Vec<(&str, String)> = Vec::new();
    {
        let mut data = ServerData::open(&data_dir).unwrap();
        data.import_directory(&crate_dir().join("../fixtures/city"))
            .unwrap();
        for member in ["member-0001", "member-0002", "member-0003"] {
            codes.push((member, data.issue_code(member).unwrap().code));
        }
        // Second devices: member-0001's spare phone, member-0003's tablet.
        // Issue 10's refusals: member-0001's phone and the leader's, on their own codes.
        for (key, member) in [
            ("member-0001/second", "member-0001"),
            ("member-0003/second", "member-0003"),
            ("member-0001/issue10", "member-0001"),
            ("member-0002/issue10", "member-0002"),
        ] {
            codes.push((key, data.issue_code(member).unwrap().code));
        }
        // Issue 13: a unit to forward to, office staff with a console password, and a phone
        // of member-0003 whose opinion the office handles.
        data.add_record(
            "unit-001",
            &sanjin_core::RecordData::Unit(sanjin_core::domain::Unit {
                name: "市城市管理局".into(),
                chapter: Some("chapter-city".into()),
            }),
        )
        .unwrap();
        data.add_staff(STAFF.0, "王芳", sanjin_server::Role::Staff)
            .unwrap();
        sanjin_server::console::set_password(&mut data, STAFF.0, STAFF.1).unwrap();
        codes.push((
            "member-0003/issue13",
            data.issue_code("member-0003").unwrap().code,
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = Config::new(
        &data_dir,
        "127.0.0.1:0".parse().unwrap(),
        TlsMode::SelfSigned { hostnames: vec![] },
    );
    config.shutdown_grace = Duration::from_secs(2);
    let running = rt.block_on(sanjin_server::spawn(config)).unwrap();
    let cert = running
        .certificate()
        .expect("a self-signed certificate")
        .to_path_buf();

    // Photos: a small real JPEG from a "camera" (EXIF time and GPS) and a PNG without EXIF.
    let photo_jpeg = tmp.path().join("村口.jpg");
    let spec = sanjin_media::testing::ExifSpec {
        orientation: None,
        taken_at: Some("2026:05:19 09:41:00".into()),
        gps: Some((30.92, 113.91)),
    };
    let jpeg = sanjin_media::testing::jpeg(&sanjin_media::testing::photo(640, 480, 7, 6), 88);
    std::fs::write(&photo_jpeg, sanjin_media::testing::with_exif(&jpeg, &spec)).unwrap();
    let photo_png = tmp.path().join("园区.png");
    std::fs::write(
        &photo_png,
        sanjin_media::testing::encode(
            &sanjin_media::testing::photo(320, 240, 11, 0),
            sanjin_media::image::ImageFormat::Png,
        ),
    )
    .unwrap();

    let codes_json = format!(
        "{{{}}}",
        codes
            .iter()
            .map(|(m, c)| format!("\"{m}\": \"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let out = Command::new(python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"])
        .arg(crate_dir().join("tests/python"))
        .env("PYTHONPATH", &bindings)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The listener test panics on purpose inside the library; keep its log to one line.
        .env("RUST_BACKTRACE", "0")
        .env("SANJIN_SERVER_URL", running.url())
        .env("SANJIN_CA_PEM", &cert)
        .env("SANJIN_CODES", codes_json)
        .env("SANJIN_PHOTO_JPEG", &photo_jpeg)
        .env("SANJIN_PHOTO_PNG", &photo_png)
        .env("SANJIN_STAFF", format!("{}:{}", STAFF.0, STAFF.1))
        .env("PYTEST_DEBUG_TEMPROOT", tmp.path())
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    rt.block_on(running.shutdown()).unwrap();
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    // Every test ran and passed: none skipped, none deselected.
    assert!(!stdout.contains("skipped"), "{stdout}");
    assert!(stdout.contains(" passed"), "{stdout}");
}
