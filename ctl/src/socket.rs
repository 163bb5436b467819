//! The cluamgr socket server: a Unix stream socket that only root can open, one JSON request
//! and one JSON reply per connection ([`crate::protocol`]). aliasd and clua-member both serve
//! cluamgr with it, either polled by the caller ([`AdminSocket::poll`], one client at a time,
//! each bounded by short timeouts) or on threads of its own ([`AdminSocket::serve`], one per
//! client, so an idle or slow client delays nobody).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
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
            serve_one(&stream, &mut handle);
        }
        served
    }

    /// Serves connections until `stop` is set, each on a thread of its own (at most
    /// [`MAX_CLIENTS`] at once; a client over that is told so at once). `handle` is called from
    /// those threads; requests are answered in whatever order `handle` serialises them.
    pub fn serve<H>(self, stop: Arc<AtomicBool>, handle: H)
    where
        H: Fn(Request) -> Reply + Send + Sync + 'static,
    {
        let handle = Arc::new(handle);
        let active = Arc::new(AtomicUsize::new(0));
        while !stop.load(Ordering::Relaxed) {
            let Ok((stream, _)) = self.listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            if active.load(Ordering::Relaxed) >= MAX_CLIENTS {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                write_reply(
                    &stream,
                    &Reply {
                        ok: false,
                        output: format!(
                            "busy: {MAX_CLIENTS} cluamgr clients connected; nothing was done, try again"
                        ),
                    },
                );
                continue;
            }
            active.fetch_add(1, Ordering::Relaxed);
            let (handle, active2) = (handle.clone(), active.clone());
            let spawned = std::thread::Builder::new()
                .name("clua-cluamgr-client".into())
                .spawn(move || {
                    serve_one(&stream, &mut |r| handle(r));
                    active2.fetch_sub(1, Ordering::Relaxed);
                });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Most cluamgr clients [`AdminSocket::serve`] talks to at once.
pub const MAX_CLIENTS: usize = 16;

/// How long a client may take to send its request, or to read the reply.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

fn write_reply(stream: &UnixStream, reply: &Reply) {
    if let Ok(mut text) = serde_json::to_string(reply) {
        text.push('\n');
        let _ = (&*stream).write_all(text.as_bytes());
    }
}

/// One request, one reply.
fn serve_one(stream: &UnixStream, handle: &mut dyn FnMut(Request) -> Reply) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = String::new();
    let read = BufReader::new(stream.take(MAX_REQUEST as u64)).read_line(&mut line);
    let reply = match read {
        Err(e) => Reply {
            ok: false,
            output: format!("reading the request: {e}"),
        },
        Ok(_) if !line.ends_with('\n') => Reply {
            ok: false,
            output: format!("request too long or not terminated (limit {MAX_REQUEST} bytes)"),
        },
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => handle(req),
            Err(e) => Reply {
                ok: false,
                output: format!("malformed request: {e}"),
            },
        },
    };
    write_reply(stream, &reply);
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod serve_tests {
    use super::*;
    use crate::command::Command;
    use crate::protocol::call;
    use std::time::Instant;

    #[test]
    fn idle_clients_do_not_delay_another_client() {
        let dir = std::env::temp_dir().join(format!("clua-socket-{}", std::process::id()));
        let path = dir.join("s.sock");
        let socket = AdminSocket::bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                socket.serve(stop, |req| Reply {
                    ok: true,
                    output: format!("{:?}", req.command),
                })
            })
        };
        // Three clients that connect and say nothing: each would hold a one-at-a-time server
        // for CLIENT_TIMEOUT (2 s).
        let idle: Vec<UnixStream> = (0..3)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        let reply = call(
            &path,
            &Request {
                command: Command::Help,
                json: false,
            },
            Duration::from_secs(10),
        )
        .unwrap();
        let took = t.elapsed();
        println!("answered in {took:?} with 3 idle clients connected");
        assert!(reply.ok && reply.output.contains("Help"), "{reply:?}");
        assert!(
            took < CLIENT_TIMEOUT,
            "the 4th client waited {took:?}: idle clients delay others"
        );
        stop.store(true, Ordering::Relaxed);
        drop(idle);
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
