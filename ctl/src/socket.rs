//! The cluamgr socket server: a Unix stream socket that only root can open, one JSON request
//! and one JSON reply per connection ([`crate::protocol`]). aliasd and clua-member both serve
//! cluamgr with it. The caller polls it (no thread of its own; a slow client is bounded by short
//! timeouts).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{Reply, Request, MAX_REQUEST};

/// The bound socket; the file is removed when this is dropped.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `path` (creating its directory, mode 0700). Refuses if another process answers on
    /// it; removes a stale socket file left by a crashed aliasd or clua-member.
    pub fn bind(path: &Path) -> std::io::Result<AdminSocket> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use by a running aliasd or clua-member",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(AdminSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves every pending connection: one request, one reply each. Returns how many.
    pub fn poll(&self, mut handle: impl FnMut(Request) -> Reply) -> usize {
        let mut served = 0;
        while let Ok((stream, _)) = self.listener.accept() {
            served += 1;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let read = BufReader::new((&stream).take(MAX_REQUEST as u64)).read_line(&mut line);
            let reply = match read {
                Err(e) => Reply {
                    ok: false,
                    output: format!("reading the request: {e}"),
                },
                Ok(_) if !line.ends_with('\n') => Reply {
                    ok: false,
                    output: format!(
                        "request too long or not terminated (limit {MAX_REQUEST} bytes)"
                    ),
                },
                Ok(_) => match serde_json::from_str::<Request>(&line) {
                    Ok(req) => handle(req),
                    Err(e) => Reply {
                        ok: false,
                        output: format!("malformed request: {e}"),
                    },
                },
            };
            if let Ok(mut text) = serde_json::to_string(&reply) {
                text.push('\n');
                let _ = (&stream).write_all(text.as_bytes());
            }
        }
        served
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
