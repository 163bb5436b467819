//! The cluamgr <-> aliasd protocol: one JSON request line, one JSON reply line, over a Unix
//! socket that only root can open (the socket file is mode 0600 in a root-owned directory).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::Command;

/// Where aliasd listens unless its configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/clua/aliasd.sock";

/// Largest request aliasd reads (a command line is far smaller).
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// `--json`: the reply of a read command (`-s`, `simulate`) is its JSON form
    /// (docs/cluamgr.md). Absent from an older cluamgr: text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub json: bool,
}

/// The reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command was carried out. When false, nothing changed.
    pub ok: bool,
    /// What changed, what is shown, or why it was refused.
    pub output: String,
}

/// Sends one request and waits for the reply.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> std::io::Result<Reply> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    s.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply)?;
    serde_json::from_str(&reply)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
