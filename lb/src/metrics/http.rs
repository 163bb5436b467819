//! The `GET /metrics` endpoint, on threads of its own: one that accepts, and one per
//! connection up to [`MAX_CONNECTIONS`]. A client that connects and sends nothing holds only
//! its own thread, for at most [`REQUEST_TIMEOUT`]; it cannot delay another scrape, and nothing
//! here runs on the control thread (issue 7: three idle clients of the old in-loop endpoint
//! delayed ARP replies by 5.6 s).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Exporter, MetricsSource};

/// Connections served at once; more are answered 503 and closed at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Time a client has to send its whole request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a client has to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request line (`GET /metrics HTTP/1.1`).
pub const MAX_REQUEST_LINE: usize = 1024;
/// Longest request head (request line and headers).
pub const MAX_REQUEST_HEAD: usize = 8192;
/// How often the accepting thread looks at the stop flag while no one connects.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// What the connection threads share.
struct Shared {
    scrape: Mutex<Scrape>,
    active: AtomicUsize,
}

struct Scrape {
    exporter: Exporter,
    source: MetricsSource,
    /// Set by [`MetricsServer::stop`]: no fold after that, so the daemon may close the ports
    /// that [`MetricsSource::ports`] reads.
    stopped: bool,
}

/// The running endpoint. Stops (see [`MetricsServer::stop`]) when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl MetricsServer {
    /// Binds `addr` and serves `source` on it.
    ///
    /// # Errors
    /// Binding or spawning the accepting thread failed.
    pub fn spawn(addr: impl ToSocketAddrs, source: MetricsSource) -> io::Result<MetricsServer> {
        MetricsServer::serve(TcpListener::bind(addr)?, source)
    }

    /// Serves `source` on a listener bound earlier (aliasd binds before it starts DPDK, so a
    /// busy port is reported before anything else happens).
    ///
    /// # Errors
    /// The listener could not be made nonblocking, or the thread could not be spawned.
    pub fn serve(listener: TcpListener, source: MetricsSource) -> io::Result<MetricsServer> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            scrape: Mutex::new(Scrape {
                exporter: Exporter::new(),
                source,
                stopped: false,
            }),
            active: AtomicUsize::new(0),
        });
        let acceptor = {
            let (stop, shared) = (stop.clone(), shared.clone());
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || accept_loop(&listener, &stop, &shared))?
        };
        Ok(MetricsServer {
            addr,
            stop,
            acceptor: Some(acceptor),
            shared,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and, once any scrape in progress is done, folding: when this returns the
    /// source is no longer read. Connections still open are answered 503 or time out on their
    /// own; stop does not wait for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        lock(&self.shared.scrape).stopped = true;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock(m: &Mutex<Scrape>) -> std::sync::MutexGuard<'_, Scrape> {
    // A panicking render leaves nothing half-written that the next one relies on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, shared: &Arc<Shared>) {
    let mut refused: Vec<(TcpStream, Instant)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        linger(&mut refused);
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            // WouldBlock, and also EMFILE and the like: try again a little later.
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if shared.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            if let Some(s) = refuse_busy(stream) {
                if refused.len() < MAX_LINGERING {
                    refused.push((s, Instant::now()));
                }
            }
            continue;
        }
        let guard = Active(shared.clone());
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                let g = guard;
                serve_connection(stream, &g.0);
            });
        // On failure the closure, the guard and the stream in it are dropped: the count goes
        // back down and the client sees the connection closed.
        let _ = spawned;
    }
}

/// Refused connections kept open a moment, so that a request arriving after the 503 does not
/// make the kernel reset the connection before the client has read the answer.
const MAX_LINGERING: usize = 64;
const LINGER: Duration = Duration::from_millis(200);

fn linger(refused: &mut Vec<(TcpStream, Instant)>) {
    refused.retain_mut(|(s, since)| {
        drain(s);
        since.elapsed() < LINGER
    });
}

/// Reads and discards whatever the (nonblocking) socket holds.
fn drain(s: &mut TcpStream) {
    let mut sink = [0u8; 512];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

/// Decrements the connection count however the connection thread ends.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One short write that the socket buffer takes at once: the accepting thread never waits on a
/// client. Returns the socket to linger on, if it is still usable.
fn refuse_busy(mut s: TcpStream) -> Option<TcpStream> {
    s.set_nonblocking(true).ok()?;
    drain(&mut s);
    s.write_all(&response(
        "503 Service Unavailable",
        "text/plain",
        &[],
        b"too many connections\n",
    ))
    .ok()?;
    s.shutdown(Shutdown::Write).ok()?;
    Some(s)
}

#[derive(Debug, PartialEq, Eq)]
enum Head<'a> {
    /// The request line's method and target.
    Request(&'a str, &'a str),
    /// Answer with this status.
    Error(&'static str),
    /// The client went away or took too long: close without a word.
    Gone,
}

fn serve_connection(mut s: TcpStream, shared: &Shared) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut buf = [0u8; MAX_REQUEST_HEAD];
    let n = read_head(&mut s, &mut buf, Instant::now() + REQUEST_TIMEOUT);
    let out = match parse_head(&buf[..n]) {
        Head::Gone => return,
        Head::Error(status) => response(status, "text/plain", &[], status.as_bytes()),
        Head::Request(method, _) if method != "GET" => response(
            "405 Method Not Allowed",
            "text/plain",
            &[("Allow", "GET")],
            b"only GET\n",
        ),
        Head::Request(_, target) if target.split('?').next() != Some("/metrics") => response(
            "404 Not Found",
            "text/plain",
            &[],
            b"not found; try /metrics\n",
        ),
        Head::Request(..) => {
            // Rendered under the lock, written after it: a slow reader holds up no one.
            let body = {
                let mut g = lock(&shared.scrape);
                let g = &mut *g;
                (!g.stopped).then(|| g.exporter.render(&g.source))
            };
            match body {
                Some(b) => response("200 OK", CONTENT_TYPE, &[], b.as_bytes()),
                None => response("503 Service Unavailable", "text/plain", &[], b"stopping\n"),
            }
        }
    };
    if s.write_all(&out).is_ok() {
        let _ = s.shutdown(Shutdown::Write);
    }
}

/// Reads until the end of the request head, the buffer is full, the client closes, or
/// `deadline`. Returns the bytes read.
fn read_head(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> usize {
    let mut n = 0;
    while n < buf.len() && !head_complete(&buf[..n]) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
        // A request line too long is refused as soon as it is seen, not after the timeout.
        if n > MAX_REQUEST_LINE && !buf[..MAX_REQUEST_LINE].contains(&b'\n') {
            break;
        }
    }
    n
}

fn head_complete(b: &[u8]) -> bool {
    b.windows(4).any(|w| w == b"\r\n\r\n") || b.windows(2).any(|w| w == b"\n\n")
}

fn parse_head(b: &[u8]) -> Head<'_> {
    let line_end = b.iter().position(|&c| c == b'\n');
    let line = match line_end {
        Some(e) if e <= MAX_REQUEST_LINE => &b[..e],
        Some(_) => return Head::Error("414 URI Too Long"),
        None if b.len() > MAX_REQUEST_LINE => return Head::Error("414 URI Too Long"),
        // Nothing, or a request line never finished: closed or timed out.
        None => return Head::Gone,
    };
    if !head_complete(b) {
        return if b.len() >= MAX_REQUEST_HEAD {
            Head::Error("431 Request Header Fields Too Large")
        } else {
            Head::Gone
        };
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return Head::Error("400 Bad Request");
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && target.starts_with('/') && version.starts_with("HTTP/1.") =>
        {
            Head::Request(method, target)
        }
        _ => Head::Error("400 Bad Request"),
    }
}

fn response(status: &str, content_type: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    let length = body.len().to_string();
    let standard = [
        ("Content-Type", content_type),
        ("Content-Length", &length),
        ("Connection", "close"),
    ];
    for (k, v) in standard.iter().chain(extra) {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::super::text_format::{parse, value};
    use super::super::{ControlCounters, PortCounters};
    use super::*;
    use arc_swap::ArcSwap;
    use clua_pipeline::{CoreCounters, Snapshot};

    fn source(calls: Arc<AtomicUsize>) -> (MetricsSource, Arc<CoreCounters>) {
        let core = Arc::new(CoreCounters::new(2));
        let source = MetricsSource {
            cores: vec![core.clone()],
            control: Arc::new(ControlCounters::default()),
            snapshot: Arc::new(ArcSwap::from_pointee(
                Snapshot::build(1, vec![], vec![], vec![], &[]).unwrap(),
            )),
            ports: Box::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                vec![PortCounters {
                    name: "client".into(),
                    ..PortCounters::default()
                }]
            }),
            adverts: None,
        };
        (source, core)
    }

    fn server() -> (MetricsServer, Arc<CoreCounters>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let (src, core) = source(calls.clone());
        (
            MetricsServer::spawn("127.0.0.1:0", src).unwrap(),
            core,
            calls,
        )
    }

    /// Sends `request`, returns (status line, headers, body).
    fn ask(addr: SocketAddr, request: &[u8]) -> (String, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        (status.into(), headers.into(), body.into())
    }

    fn scrape(addr: SocketAddr) -> String {
        let (status, headers, body) = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            headers.contains("Content-Type: text/plain; version=0.0.4\r\n"),
            "{headers}"
        );
        assert!(headers.contains(&format!("Content-Length: {}", body.len())));
        body
    }

    #[test]
    fn idle_clients_do_not_delay_a_scrape() {
        let (srv, _, _) = server();
        let idle: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(srv.local_addr()).unwrap())
            .collect();
        // Let the acceptor take all three first, as it would have in the old serial loop.
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let body = scrape(srv.local_addr());
        let took = t.elapsed();
        // Serialized behind the idle clients it would take at least 3 x REQUEST_TIMEOUT.
        assert!(took < Duration::from_millis(1500), "scrape took {took:?}");
        assert!(body.contains("clua_rx_packets_total{worker=\"0\"} 0"));
        drop(idle);
    }

    #[test]
    fn each_scrape_reads_the_counters_anew() {
        let (srv, core, calls) = server();
        let first = parse(&scrape(srv.local_addr()));
        assert_eq!(
            value(&first, "clua_rx_packets_total", &[("worker", "0")]),
            Some(0.0)
        );
        CoreCounters::add(&core.rx, 17);
        CoreCounters::add(&core.conn_inserts, 3);
        let second = parse(&scrape(srv.local_addr()));
        assert_eq!(
            value(&second, "clua_rx_packets_total", &[("worker", "0")]),
            Some(17.0)
        );
        assert_eq!(value(&second, "clua_conn_inserts_total", &[]), Some(3.0));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "port stats read once per scrape"
        );
    }

    #[test]
    fn only_get_metrics() {
        let (srv, _, calls) = server();
        let a = srv.local_addr();
        let (status, headers, _) = ask(a, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(headers.contains("Allow: GET"));
        assert_eq!(
            ask(a, b"GET / HTTP/1.0\r\n\r\n").0,
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            ask(a, b"GET /metricsx HTTP/1.0\r\n\r\n").0,
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(ask(a, b"nonsense\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
        // The path with a query is still /metrics; HTTP/1.0 with bare newlines (netcat) too.
        assert_eq!(
            ask(a, b"GET /metrics?x=1 HTTP/1.0\n\n").0,
            "HTTP/1.1 200 OK"
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        let t = Instant::now();
        assert_eq!(ask(a, long.as_bytes()).0, "HTTP/1.1 414 URI Too Long");
        assert!(t.elapsed() < REQUEST_TIMEOUT, "refused without waiting");
        let many = format!(
            "GET /metrics HTTP/1.1\r\n{}",
            "X-Filler: 0123456789abcdef\r\n".repeat(MAX_REQUEST_HEAD / 28 + 1)
        );
        assert_eq!(
            ask(a, many.as_bytes()).0,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "only the one good request scraped"
        );
    }

    #[test]
    fn connections_beyond_the_cap_are_refused_at_once_and_served_again_later() {
        let (srv, _, _) = server();
        let a = srv.local_addr();
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(a).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        let (status, _, _) = ask(a, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert!(t.elapsed() < Duration::from_millis(1000));
        drop(idle);
        // The idle ones end (closed by their clients); the slots free up.
        let deadline = Instant::now() + Duration::from_secs(5);
        while srv.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        scrape(a);
    }

    #[test]
    fn a_client_that_sends_nothing_is_dropped_after_the_timeout() {
        let (srv, _, _) = server();
        let mut s = TcpStream::connect(srv.local_addr()).unwrap();
        s.set_read_timeout(Some(REQUEST_TIMEOUT * 3)).unwrap();
        let t = Instant::now();
        let mut b = Vec::new();
        let _ = s.read_to_end(&mut b);
        let took = t.elapsed();
        assert!(b.is_empty());
        assert!(
            took >= REQUEST_TIMEOUT - Duration::from_millis(100) && took < REQUEST_TIMEOUT * 2,
            "closed after {took:?}"
        );
    }

    #[test]
    fn stop_is_prompt_and_ends_the_folding() {
        let (mut srv, _, calls) = server();
        let a = srv.local_addr();
        let mut waiting = TcpStream::connect(a).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        srv.stop();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "stop waited on a client"
        );
        // The connection accepted before stop is answered, but the source is not read.
        waiting.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut text = String::new();
        waiting.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // And no one is accepted any more.
        drop(srv);
        std::thread::sleep(Duration::from_millis(50));
        assert!(TcpStream::connect(a).is_err());
    }

    #[test]
    fn heads_parse() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"),
            Head::Request("GET", "/metrics")
        );
        assert_eq!(parse_head(b""), Head::Gone);
        assert_eq!(parse_head(b"GET /metrics HTTP/1.1\r\nHost"), Head::Gone);
        assert_eq!(
            parse_head(b"GET  /metrics HTTP/1.1\r\n\r\n"),
            Head::Error("400 Bad Request")
        );
        assert_eq!(
            parse_head(b"GET metrics HTTP/1.1\r\n\r\n"),
            Head::Error("400 Bad Request")
        );
    }
}
