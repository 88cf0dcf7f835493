//! Running the `sanjin` binary in tests.

use std::path::Path;
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr should mention {needle:?}: {}",
            self.stderr
        );
        self
    }
}

pub fn sanjin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sanjin"));
    c.env_remove("SANJIN_STORE");
    c
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `sanjin ARGS --store STORE`: a device command on the store at `store`.
pub fn run(store: &Path, args: &[&str]) -> Run {
    sanjin()
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .expect("sanjin runs")
        .into()
}

/// `sanjin ARGS` without `SANJIN_DATA` from the environment: the server side's commands
/// (`admin`, `export`) with their `--data` folder in `args`.
pub fn run_data(args: &[&str]) -> Run {
    sanjin()
        .env_remove("SANJIN_DATA")
        .args(args)
        .output()
        .expect("sanjin runs")
        .into()
}
