//! Helpers shared by the workspace's integration tests.

use std::fmt::Display;
use std::io::Write as _;

/// Where [`skip`] also appends its line, so a test run can end with the list
/// of what did not run (`scripts/test.sh` sets it and prints the list).
pub const SKIP_LOG_ENV: &str = "BOT_BOTTLE_SKIP_LOG";

/// Reports that the running test could not do its work here, and why.
///
/// The test harness hides what a passing test prints, so a `println!` SKIP
/// would leave only an `ok` in the output: a skip that looks like a pass.
/// This writes to the process's standard error directly (the harness does
/// not capture that), naming the test, and appends the same line to the file
/// named by [`SKIP_LOG_ENV`] when it is set. The caller then returns.
pub fn skip(why: impl Display) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("(unnamed test)");
    let line = format!("SKIP {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        // One write per line with O_APPEND: lines from parallel tests and
        // test binaries do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
