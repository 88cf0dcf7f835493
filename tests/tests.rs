//! End-to-end tests of the `sanjin` binary on real SQLite files.
//!
//! - `cli`: the device commands as a member uses them, two devices merging, bad input (issue 2).
//! - `crash`: SIGKILL in the middle of a stream of saves loses nothing that returned (issue 2).

mod cli;
mod crash;
mod support;
