//! `cluamgr capture` (issue 11): the request, the reply, and the pcapng file it becomes.
//!
//! aliasd's workers copy the frames of one port (received, sent, or dropped with their reason)
//! into a bounded ring; its control thread turns them into a pcapng file (below) and sends it
//! back base64-encoded in the reply, and `cluamgr` writes it. The caller, not aliasd, writes
//! the file: a relative path is then the caller's working directory, the file belongs to the
//! caller, and a hardened aliasd unit (read-only file system) needs no writable directory.
//!
//! The file is pcapng (not classic pcap) because pcapng carries, per packet, the direction
//! (`epb_flags`: inbound / outbound) and a comment (`opt_comment`): a dropped packet says
//! `drop: REASON` (the `clua_drops_total` reason label). tcpdump (libpcap ≥ 1.1) and Wireshark
//! read it. The writer is a few dozen lines over the three block types used (section header,
//! interface description, enhanced packet, pcapng §4.1–4.3): a crate would bring a reader and
//! generic options we do not need.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Packets a capture takes unless `--count` says otherwise.
pub const DEFAULT_COUNT: u32 = 1000;
/// The most packets one capture may take (the reply carries the whole file).
pub const MAX_COUNT: u32 = 10_000;
/// Seconds a capture runs at most unless `--seconds` says otherwise.
pub const DEFAULT_SECONDS: u32 = 10;
/// The longest capture.
pub const MAX_SECONDS: u32 = 300;
/// Bytes kept of each frame (`--snaplen`); frames on the lab's ports are at most 1514 bytes.
pub const DEFAULT_SNAPLEN: u32 = 2048;
/// The longest snap length: the size of a capture slot in aliasd.
pub const MAX_SNAPLEN: u32 = 2048;

/// pcapng link type of Ethernet (`LINKTYPE_ETHERNET`).
pub const LINKTYPE_ETHERNET: u16 = 1;

/// `cluamgr capture PORT [--rx] [--tx] [--drop] [--all] [--count N] [--seconds S]
/// [--snaplen N] [-w FILE] [--json]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRequest {
    /// The port's name (aliasd.toml `[[port]] name`).
    pub port: String,
    /// Frames received on the port, as they arrived (before any rewrite).
    pub rx: bool,
    /// Frames sent on the port (forwarded, and the control thread's own frames).
    pub tx: bool,
    /// Frames received on the port that the pipeline dropped, with the reason.
    pub drop: bool,
    /// Stop after this many packets (1..=[`MAX_COUNT`]).
    pub count: u32,
    /// Stop after this many seconds (1..=[`MAX_SECONDS`]).
    pub seconds: u32,
    /// Bytes kept per frame (1..=[`MAX_SNAPLEN`]).
    pub snaplen: u32,
    /// Where cluamgr writes the file (`-` for standard output); aliasd does not use it.
    pub file: String,
    /// Print the summary as JSON.
    pub json: bool,
}

/// What a capture took, and why it stopped: the summary cluamgr prints (`--json`: this
/// struct; its field names are stable).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSummary {
    /// The port.
    pub port: String,
    /// The directions asked for: `rx`, `tx`, `drop`.
    pub directions: Vec<String>,
    /// Packets in the file.
    pub packets: u32,
    /// Of them, received.
    pub rx: u32,
    /// Of them, sent.
    pub tx: u32,
    /// Of them, dropped.
    pub dropped: u32,
    /// Frames the workers could not hand over (capture ring full): not in the file.
    pub lost: u64,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// `count` or `time`.
    pub stopped_by: String,
    /// Bytes kept per frame.
    pub snaplen: u32,
    /// The file written (as given), `-` for standard output.
    pub file: String,
}

/// aliasd's reply to a capture, in `Reply::output` as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureReply {
    /// The summary.
    pub summary: CaptureSummary,
    /// The pcapng file, base64 (standard alphabet, padded).
    pub pcapng: String,
}

/// Which way a captured frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received on the port.
    Rx,
    /// Sent on the port.
    Tx,
    /// Received and dropped (the reason goes in the packet's comment).
    Drop,
}

/// Why a request is refused before anything is captured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// `--count` out of range.
    #[error("capture --count {0} is out of range 1..={MAX_COUNT}")]
    Count(u32),
    /// `--seconds` out of range.
    #[error("capture --seconds {0} is out of range 1..={MAX_SECONDS}")]
    Seconds(u32),
    /// `--snaplen` out of range.
    #[error("capture --snaplen {0} is out of range 1..={MAX_SNAPLEN}")]
    Snaplen(u32),
    /// An empty port name.
    #[error("capture needs a port name (aliasd.toml [[port]] name)")]
    NoPort,
}

impl CaptureRequest {
    /// Checks the bounds; aliasd checks again (a request may come from elsewhere than cluamgr).
    ///
    /// # Errors
    /// The first [`CaptureError`] found.
    pub fn validate(&self) -> Result<(), CaptureError> {
        if self.port.is_empty() {
            return Err(CaptureError::NoPort);
        }
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Err(CaptureError::Count(self.count));
        }
        if !(1..=MAX_SECONDS).contains(&self.seconds) {
            return Err(CaptureError::Seconds(self.seconds));
        }
        if !(1..=MAX_SNAPLEN).contains(&self.snaplen) {
            return Err(CaptureError::Snaplen(self.snaplen));
        }
        Ok(())
    }

    /// The directions asked for, by name.
    pub fn directions(&self) -> Vec<String> {
        [("rx", self.rx), ("tx", self.tx), ("drop", self.drop)]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| (*n).to_string())
            .collect()
    }

    /// The cluamgr arguments after `capture`.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![self.port.clone()];
        for (flag, on) in [("--rx", self.rx), ("--tx", self.tx), ("--drop", self.drop)] {
            if on {
                v.push(flag.into());
            }
        }
        v.extend([
            "--count".into(),
            self.count.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
            "--snaplen".into(),
            self.snaplen.to_string(),
            "-w".into(),
            self.file.clone(),
        ]);
        if self.json {
            v.push("--json".into());
        }
        v
    }
}

/// The text summary cluamgr prints.
pub fn render_summary(s: &CaptureSummary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "capture on {} ({}): {} packets ({} rx, {} tx, {} dropped) in {}.{:03} s, stopped by {}",
        s.port,
        s.directions.join(","),
        s.packets,
        s.rx,
        s.tx,
        s.dropped,
        s.duration_ms / 1000,
        s.duration_ms % 1000,
        s.stopped_by
    );
    if s.lost > 0 {
        let _ = writeln!(
            t,
            "{} frames lost: the capture ring was full (the file is incomplete)",
            s.lost
        );
    }
    if s.file != "-" {
        let _ = writeln!(t, "written to {} (pcapng, snaplen {})", s.file, s.snaplen);
    }
    t
}

/// A pcapng file in memory: one section, one Ethernet interface (the port), enhanced packet
/// blocks with direction and comment. Little-endian (the byte-order magic says so; readers
/// accept either).
#[derive(Clone, Debug)]
pub struct PcapngWriter {
    buf: Vec<u8>,
    snaplen: u32,
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn option(v: &mut Vec<u8>, code: u16, value: &[u8]) {
    v.extend_from_slice(&code.to_le_bytes());
    v.extend_from_slice(&(value.len() as u16).to_le_bytes());
    v.extend_from_slice(value);
    pad4(v);
}

/// Appends a block: type, total length, `body`, total length (pcapng §3.1).
fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let total = (12 + body.len()) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&total.to_le_bytes());
}

impl PcapngWriter {
    /// The section header and the interface description block (`if_name` = the port's name,
    /// microsecond timestamps, the default).
    pub fn new(if_name: &str, snaplen: u32) -> PcapngWriter {
        let mut buf = Vec::new();
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        option(&mut shb, 4, b"clua aliasd (cluamgr capture)"); // shb_userappl
        option(&mut shb, 0, &[]);
        block(&mut buf, 0x0A0D_0D0A, &shb);
        let mut idb = Vec::new();
        idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        option(&mut idb, 2, if_name.as_bytes()); // if_name
        option(&mut idb, 0, &[]);
        block(&mut buf, 1, &idb);
        PcapngWriter { buf, snaplen }
    }

    /// Appends an enhanced packet block: `data` (cut to the snap length) of a frame of
    /// `orig_len` bytes, at `ts_us` µs since the epoch, with its direction and, for a drop,
    /// the comment `drop: REASON`.
    pub fn packet(
        &mut self,
        ts_us: u64,
        dir: Direction,
        orig_len: u32,
        data: &[u8],
        drop_reason: Option<&str>,
    ) {
        let data = &data[..data.len().min(self.snaplen as usize)];
        let mut epb = Vec::with_capacity(40 + data.len());
        epb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        epb.extend_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts_us as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        pad4(&mut epb);
        // epb_flags bits 0-1: 01 inbound, 10 outbound (pcapng §4.3.1).
        let flags: u32 = match dir {
            Direction::Rx | Direction::Drop => 1,
            Direction::Tx => 2,
        };
        option(&mut epb, 2, &flags.to_le_bytes());
        if let Some(r) = drop_reason {
            option(&mut epb, 1, format!("drop: {r}").as_bytes()); // opt_comment
        }
        option(&mut epb, 0, &[]);
        block(&mut self.buf, 6, &epb);
    }

    /// The file so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The file.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// base64 of `bytes` (the reply's `pcapng`).
pub fn encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of a reply's `pcapng`.
///
/// # Errors
/// The decoder's, for text that is not base64.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CaptureRequest {
        CaptureRequest {
            port: "client".into(),
            rx: true,
            tx: true,
            drop: false,
            count: DEFAULT_COUNT,
            seconds: DEFAULT_SECONDS,
            snaplen: DEFAULT_SNAPLEN,
            file: "x.pcapng".into(),
            json: false,
        }
    }

    #[test]
    fn header_blocks_are_byte_exact() {
        let w = PcapngWriter::new("lan", 2048);
        let b = w.bytes();
        #[rustfmt::skip]
        let shb: Vec<u8> = [
            &[0x0A, 0x0D, 0x0D, 0x0A][..], &[68, 0, 0, 0],
            &[0x4D, 0x3C, 0x2B, 0x1A], &[1, 0, 0, 0], &[0xff; 8],
            &[4, 0, 29, 0], b"clua aliasd (cluamgr capture)", &[0, 0, 0],
            &[0, 0, 0, 0], &[68, 0, 0, 0],
        ].concat();
        assert_eq!(&b[..68], &shb[..]);
        #[rustfmt::skip]
        let idb: Vec<u8> = [
            &[1, 0, 0, 0][..], &[32, 0, 0, 0],
            &[1, 0, 0, 0], &[0, 8, 0, 0],
            &[2, 0, 3, 0], b"lan", &[0],
            &[0, 0, 0, 0], &[32, 0, 0, 0],
        ].concat();
        assert_eq!(&b[68..], &idb[..]);
    }

    #[test]
    fn packet_blocks_are_byte_exact_with_direction_and_drop_comment() {
        let mut w = PcapngWriter::new("lan", 4);
        let start = w.bytes().len();
        let ts = 0x0000_0001_0000_0002u64;
        w.packet(
            ts,
            Direction::Drop,
            60,
            &[0xaa, 0xbb, 0xcc, 0xdd, 0xee],
            Some("not_ours"),
        );
        #[rustfmt::skip]
        let epb: Vec<u8> = [
            &[6, 0, 0, 0][..], &[68, 0, 0, 0],
            &[0, 0, 0, 0], &[1, 0, 0, 0], &[2, 0, 0, 0],
            &[4, 0, 0, 0], &[60, 0, 0, 0],
            &[0xaa, 0xbb, 0xcc, 0xdd], // cut to the snap length, already aligned
            &[2, 0, 4, 0], &[1, 0, 0, 0], // inbound
            &[1, 0, 14, 0], b"drop: not_ours", &[0, 0],
            &[0, 0, 0, 0], &[68, 0, 0, 0],
        ].concat();
        assert_eq!(&w.bytes()[start..], &epb[..]);
        let at = w.bytes().len();
        w.packet(7, Direction::Tx, 1, &[1, 2, 3], None);
        #[rustfmt::skip]
        let tx: Vec<u8> = [
            &[6, 0, 0, 0][..], &[48, 0, 0, 0],
            &[0, 0, 0, 0], &[0, 0, 0, 0], &[7, 0, 0, 0],
            &[3, 0, 0, 0], &[3, 0, 0, 0], // original length never below the captured one
            &[1, 2, 3, 0],
            &[2, 0, 4, 0], &[2, 0, 0, 0], // outbound
            &[0, 0, 0, 0], &[48, 0, 0, 0],
        ].concat();
        assert_eq!(&w.bytes()[at..], &tx[..]);
    }

    #[test]
    fn every_block_length_is_a_multiple_of_four_and_repeated() {
        let mut w = PcapngWriter::new("interconnect-1", 2048);
        for n in 0..9usize {
            let data: Vec<u8> = (0..n as u8 * 7).collect();
            w.packet(n as u64, Direction::Rx, data.len() as u32, &data, None);
        }
        let b = w.into_bytes();
        let mut at = 0;
        let mut blocks = 0;
        while at < b.len() {
            let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let trailer = u32::from_le_bytes(b[at + len - 4..at + len].try_into().unwrap());
            assert_eq!(trailer as usize, len);
            at += len;
            blocks += 1;
        }
        assert_eq!((at, blocks), (b.len(), 11));
    }

    #[test]
    fn base64_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        assert_eq!(encode(b"pcap"), "cGNhcA==");
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(req().validate(), Ok(()));
        let r = CaptureRequest { count: 0, ..req() };
        assert_eq!(r.validate(), Err(CaptureError::Count(0)));
        let r = CaptureRequest {
            count: MAX_COUNT + 1,
            ..req()
        };
        assert_eq!(r.validate(), Err(CaptureError::Count(MAX_COUNT + 1)));
        let r = CaptureRequest {
            seconds: MAX_SECONDS + 1,
            ..req()
        };
        assert!(matches!(r.validate(), Err(CaptureError::Seconds(_))));
        let r = CaptureRequest {
            snaplen: 0,
            ..req()
        };
        assert!(matches!(r.validate(), Err(CaptureError::Snaplen(0))));
        let r = CaptureRequest {
            port: String::new(),
            ..req()
        };
        assert_eq!(r.validate(), Err(CaptureError::NoPort));
    }

    #[test]
    fn the_command_line_parses_with_defaults_and_round_trips() {
        use crate::command::{parse_args, Command, CommandError};
        let c = parse_args(["capture", "client"]).unwrap();
        let Command::Capture(r) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(
            *r,
            CaptureRequest {
                file: "client.pcapng".into(),
                ..req()
            }
        );
        assert_eq!(parse_args(c.to_args()).unwrap(), c);
        let c = parse_args([
            "capture",
            "lan",
            "--drop",
            "-c",
            "5",
            "--seconds",
            "2",
            "-w",
            "-",
            "--json",
        ])
        .unwrap();
        let Command::Capture(r) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(
            (
                r.rx,
                r.tx,
                r.drop,
                r.count,
                r.seconds,
                r.file.as_str(),
                r.json
            ),
            (false, false, true, 5, 2, "-", true)
        );
        assert_eq!(parse_args(c.to_args()).unwrap(), c);
        let Command::Capture(r) = parse_args(["capture", "lan", "--all"]).unwrap() else {
            panic!()
        };
        assert!(r.rx && r.tx && r.drop);
        assert_eq!(
            parse_args(["capture", "lan", "--count", "0"]),
            Err(CommandError::Capture(CaptureError::Count(0)))
        );
        assert_eq!(
            parse_args(["capture", "lan", "--seconds", "301"]),
            Err(CommandError::Capture(CaptureError::Seconds(301)))
        );
        assert!(parse_args(["-f", "capture", "lan"]).is_err());
    }

    #[test]
    fn summary_names_what_was_lost() {
        let s = CaptureSummary {
            port: "client".into(),
            directions: vec!["rx".into(), "drop".into()],
            packets: 3,
            rx: 2,
            dropped: 1,
            lost: 5,
            duration_ms: 1234,
            stopped_by: "time".into(),
            snaplen: 2048,
            file: "a.pcapng".into(),
            ..CaptureSummary::default()
        };
        let t = render_summary(&s);
        assert!(
            t.starts_with("capture on client (rx,drop): 3 packets (2 rx, 0 tx, 1 dropped) in 1.234 s, stopped by time\n"),
            "{t}"
        );
        assert!(t.contains("5 frames lost"), "{t}");
    }
}
