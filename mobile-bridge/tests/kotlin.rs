//! Issue 12, point 5: the bridge on Android's platform. Generates UniFFI's Kotlin bindings from
//! the cdylib this build produced, compiles them with the Kotlin test program
//! (`tests/kotlin/*.kt`) with a Kotlin 2 compiler, and runs it on the JVM with JNA — the way an
//! Android app loads the library — against a real sync server on loopback (HTTPS with its
//! self-signed certificate, whose public key the devices pin).
//!
//! Tools (installed by `scripts/setup.d/kotlin.sh`): a JDK (`java`, or `$JAVA_HOME/bin/java`),
//! JNA's jar (`$JNA_JAR`, default Debian's `/usr/share/java/jna.jar` from `libjna-java`), and the
//! Kotlin compiler: `$KOTLIN_COMPILER_JAR` (a jar holding
//! `org.jetbrains.kotlin.cli.jvm.K2JVMCompiler`) with `$KOTLIN_STDLIB_JAR`, by default the ones
//! inside the PyPI package `kotlin-jupyter-kernel`. Like the Python test, a missing tool fails
//! the test (it never skips), with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sanjin_server::{Config, ServerData, TlsMode};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const INSTALL: &str = "install the tools with `sudo bash scripts/setup.d/kotlin.sh` (Debian's \
     openjdk-17-jdk-headless and libjna-java, and `python3 -m pip install kotlin-jupyter-kernel` \
     for the Kotlin compiler)";

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

/// What compiling and running Kotlin on the JVM needs.
struct Tools {
    java: PathBuf,
    compiler: PathBuf,
    stdlib: PathBuf,
    jna: PathBuf,
}

fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin/java").is_file() => {
            Path::new(&home).join("bin/java")
        }
        _ => PathBuf::from("java"),
    }
}

/// The jars folder of the PyPI package `kotlin-jupyter-kernel` (`run_kotlin_kernel/jars`).
fn kernel_jars() -> Option<PathBuf> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import os, run_kotlin_kernel; print(os.path.dirname(run_kotlin_kernel.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("jars");
    dir.is_dir().then_some(dir)
}

/// The one jar in `dir` whose name starts with `prefix` and ends with `suffix`.
fn jar_in(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    found.sort();
    found.pop()
}

fn tools() -> Tools {
    let java = java();
    let version = Command::new(&java).arg("-version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "a JDK is required for this test ({}): {INSTALL}",
        java.display()
    );
    let env_path = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let jars = kernel_jars();
    let compiler = env_path("KOTLIN_COMPILER_JAR")
        .or_else(|| jar_in(jars.as_ref()?, "kotlin-jupyter-kernel-", "-all.jar"))
        .unwrap_or_else(|| panic!("the Kotlin compiler is required for this test: {INSTALL}"));
    let stdlib = env_path("KOTLIN_STDLIB_JAR")
        .or_else(|| jar_in(jars.as_ref()?, "kotlin-stdlib-", ".jar"))
        .unwrap_or_else(|| panic!("Kotlin's standard library is required: {INSTALL}"));
    let jna = env_path("JNA_JAR").unwrap_or_else(|| PathBuf::from("/usr/share/java/jna.jar"));
    for (what, p) in [
        ("the Kotlin compiler", &compiler),
        ("Kotlin's stdlib", &stdlib),
        ("JNA", &jna),
    ] {
        assert!(
            p.is_file(),
            "{what} ({}) is missing: {INSTALL}",
            p.display()
        );
    }
    Tools {
        java,
        compiler,
        stdlib,
        jna,
    }
}

/// Runs `cmd` to its end or until `limit`, then kills it; (success, stdout, stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let reader = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let (out_t, err_t) = (reader(Box::new(out)), reader(Box::new(err)));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out_t.join().unwrap(), err_t.join().unwrap());
    match status {
        Some(s) => (s.success(), stdout, stderr),
        None => (false, stdout, format!("{stderr}\n(killed after {limit:?})")),
    }
}

/// Kotlin bindings in `dir` (`org/sanjin/bridge/sanjin_mobile_bridge.kt`), with the package
/// name the apps use (`uniffi.toml`, found through `bindgen.toml` as by `build-bindings.sh`).
fn generate_kotlin(dir: &Path) -> PathBuf {
    let utf8 = |p: PathBuf| camino::Utf8PathBuf::from_path_buf(p).unwrap();
    uniffi::generate(uniffi::GenerateOptions {
        languages: vec![uniffi::TargetLanguage::Kotlin],
        source: utf8(cdylib()),
        out_dir: utf8(dir.to_path_buf()),
        config_override: Some(utf8(crate_dir().join("bindgen.toml"))),
        format: false,
        crate_filter: None,
        metadata_no_deps: true,
    })
    .expect("generate the Kotlin bindings");
    let kt = dir.join("org/sanjin/bridge/sanjin_mobile_bridge.kt");
    assert!(kt.is_file(), "no {}", kt.display());
    kt
}

#[test]
fn issue12_kotlin_on_the_jvm_drives_the_bridge_against_a_real_server() {
    let tools = tools();
    let tmp = tempfile::tempdir().unwrap();

    // The bindings, compiled with the test program by Kotlin 2 (Android's language level).
    let bindings = generate_kotlin(&tmp.path().join("bindings"));
    let mut sources = vec![bindings];
    for e in std::fs::read_dir(crate_dir().join("tests/kotlin")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "kt") {
            sources.push(p);
        }
    }
    let classes = tmp.path().join("classes");
    let class_path = |extra: &[&Path]| {
        std::env::join_paths(
            [tools.stdlib.as_path(), tools.jna.as_path()]
                .into_iter()
                .chain(extra.iter().copied()),
        )
        .unwrap()
    };
    let mut kotlinc = Command::new(&tools.java);
    kotlinc
        .arg("-Xss8m")
        .arg("-cp")
        .arg(&tools.compiler)
        .arg("org.jetbrains.kotlin.cli.jvm.K2JVMCompiler")
        .args(["-no-stdlib", "-no-reflect", "-nowarn", "-jvm-target", "17"])
        .arg("-cp")
        .arg(class_path(&[]))
        .arg("-d")
        .arg(&classes)
        .args(&sources);
    let started = Instant::now();
    let (ok, out, err) = run_bounded(kotlinc, Duration::from_secs(600));
    println!(
        "kotlin compile (bindings + test program): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(ok, "the generated Kotlin does not compile:\n{out}\n{err}");

    // The server: the city's directory, one-time codes for group-01's members and leader.
    let data_dir = tmp.path().join("server");
    let mut codes: Vec<(&str, String)> = Vec::new();
    {
        let mut data = ServerData::open(&data_dir).unwrap();
        data.import_directory(&crate_dir().join("../fixtures/city"))
            .unwrap();
        for member in ["member-0001", "member-0002", "member-0003"] {
            codes.push((member, data.issue_code(member).unwrap().code));
        }
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
    let cert = running.certificate().expect("a self-signed certificate");

    // A camera's photo: a small real JPEG with EXIF time and GPS.
    let photo = tmp.path().join("村口.jpg");
    let spec = sanjin_media::testing::ExifSpec {
        orientation: None,
        taken_at: Some("2026:05:19 09:41:00".into()),
        gps: Some((30.92, 113.91)),
    };
    let jpeg = sanjin_media::testing::jpeg(&sanjin_media::testing::photo(640, 480, 7, 6), 88);
    std::fs::write(&photo, sanjin_media::testing::with_exif(&jpeg, &spec)).unwrap();

    // JNA loads `sanjin_mobile_bridge` by name from jna.library.path, as from an APK's jniLibs.
    let libs = tmp.path().join("jniLibs");
    std::fs::create_dir_all(&libs).unwrap();
    let lib = cdylib();
    std::fs::copy(&lib, libs.join(lib.file_name().unwrap())).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut jvm = Command::new(&tools.java);
    jvm.arg(format!("-Djna.library.path={}", libs.display()))
        .arg("-cp")
        .arg(class_path(&[&classes]))
        .arg("MemberDayKt")
        .env("RUST_BACKTRACE", "0")
        .env("SANJIN_SERVER_URL", running.url())
        .env("SANJIN_CA_PEM", cert)
        .env("SANJIN_PHOTO_JPEG", &photo)
        .env("SANJIN_WORK", &work);
    for (member, code) in &codes {
        jvm.env(format!("SANJIN_CODE_{}", member.replace('-', "_")), code);
    }
    let started = Instant::now();
    let (ok, out, err) = run_bounded(jvm, Duration::from_secs(300));
    println!(
        "kotlin run: {:.1} s\n{out}\n{err}",
        started.elapsed().as_secs_f64()
    );
    rt.block_on(running.shutdown()).unwrap();
    assert!(ok, "the Kotlin test program failed:\n{out}\n{err}");
    for scene in [
        "kotlin: offline records, edit, photo ok",
        "kotlin: sync with the server, leader's approval ok",
        "kotlin: bundle between phones, 已送达 ok",
        "kotlin: phone-to-phone session ok",
        "kotlin: closeStore, AutoCloseable.use ok",
        "kotlin: all scenes passed",
    ] {
        assert!(out.contains(scene), "missing {scene:?} in:\n{out}");
    }
}
