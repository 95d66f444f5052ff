//! Child processes started in their own process group (verification commands, helm): stopping
//! one stops whatever it started too. A leaf: it knows nothing of what runs.

use std::process::{Command, Stdio};

/// Kills the process group `pid` leads, with every process in it.
pub fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
