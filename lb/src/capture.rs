//! `cluamgr capture` in aliasd (issue 11): the workers' tap and the control thread's session.
//!
//! Off, a capture costs a worker one relaxed atomic load per RX burst ([`CaptureTap::armed`],
//! like dpdk-pdump's enable flag) and nothing per packet. Armed, the worker copies each frame
//! of the captured port and direction (received before the pipeline rewrites it, sent as it
//! leaves, dropped with the pipeline's [`DropReason`]) into a preallocated [`Frame`] taken from
//! its own ring's free list, and publishes it; a ring with no free frame counts the frame as
//! lost and never waits. The control thread ([`Capturer::poll`], once per loop) drains the
//! rings into a pcapng file ([`clua_ctl::capture::PcapngWriter`]) until the count or the time
//! is reached, disarms the tap, and answers the waiting cluamgr with the summary and the file.
//!
//! Frames are allocated at the first capture, on the control thread, and reused afterwards
//! (a router that is never captured holds none). Like [`crate::records`], a ring is a free
//! list and a full queue of boxed frames over crossbeam's `ArrayQueue` (no `unsafe`); unlike
//! it, frames go one by one: a capture is bounded and rare, and a frame is a 2 KiB copy anyway.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use clua_ctl::capture::{
    encode, CaptureReply, CaptureRequest, CaptureSummary, Direction, PcapngWriter, MAX_SNAPLEN,
};
use clua_ctl::protocol::Reply;
use clua_pipeline::DropReason;
use crossbeam_queue::ArrayQueue;

/// Bytes a frame slot holds (the largest snap length).
pub const SLOT: usize = MAX_SNAPLEN as usize;

/// Frames one worker can have waiting for the control thread (2 KiB each, allocated at the
/// first capture).
pub const RING_FRAMES: usize = 1024;

/// Frames the control thread takes from one worker's ring per loop.
pub const DRAIN_PER_LOOP: usize = 256;

/// One captured frame.
#[derive(Debug)]
pub struct Frame {
    /// The worker's clock ([`crate::clock::Clock::now_us`]) when its burst was read.
    pub ts_us: u64,
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// Bytes kept in `data`.
    pub len: u16,
    /// Which way.
    pub dir: Direction,
    /// The drop reason, for [`Direction::Drop`].
    pub reason: DropReason,
    /// The first `len` bytes of the frame.
    pub data: [u8; SLOT],
}

/// One worker's frames to the control thread: a free list and a full queue.
#[derive(Debug)]
pub struct CaptureRing {
    full: ArrayQueue<Box<Frame>>,
    free: ArrayQueue<Box<Frame>>,
    lost: AtomicU64,
}

impl CaptureRing {
    fn new(frames: usize) -> CaptureRing {
        CaptureRing {
            full: ArrayQueue::new(frames.max(1)),
            free: ArrayQueue::new(frames.max(1)),
            lost: AtomicU64::new(0),
        }
    }

    /// Frames that did not fit since the counter was last reset.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

const RX: u32 = 1;
const TX: u32 = 2;
const DROP: u32 = 4;

/// What the tap is armed for, as one word: direction bits, and the port above them. Read once
/// per burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Armed(u32);

impl Armed {
    /// Nothing armed.
    pub const OFF: Armed = Armed(0);
    /// Nothing is captured.
    #[inline]
    pub fn is_off(self) -> bool {
        self.0 == 0
    }
    #[inline]
    fn on(self, bit: u32, port: u16) -> bool {
        self.0 & bit != 0 && (self.0 >> 16) as u16 == port
    }
    /// Frames received on `port` are captured.
    #[inline]
    pub fn rx(self, port: u16) -> bool {
        self.on(RX, port)
    }
    /// Frames sent on `port` are captured.
    #[inline]
    pub fn tx(self, port: u16) -> bool {
        self.on(TX, port)
    }
    /// Frames received on `port` and dropped are captured.
    #[inline]
    pub fn drop(self, port: u16) -> bool {
        self.on(DROP, port)
    }
}

/// The switch and the rings every worker shares with the control thread.
#[derive(Debug)]
pub struct CaptureTap {
    armed: AtomicU32,
    snaplen: AtomicU32,
    rings: Vec<CaptureRing>,
}

impl CaptureTap {
    /// A disarmed tap for `workers` workers, `frames` frames per ring (none allocated yet).
    pub fn new(workers: usize, frames: usize) -> Arc<CaptureTap> {
        Arc::new(CaptureTap {
            armed: AtomicU32::new(0),
            snaplen: AtomicU32::new(SLOT as u32),
            rings: (0..workers).map(|_| CaptureRing::new(frames)).collect(),
        })
    }

    /// What is being captured (the worker's one load per burst).
    #[inline]
    pub fn armed(&self) -> Armed {
        Armed(self.armed.load(Ordering::Relaxed))
    }

    /// The rings, in worker order.
    pub fn rings(&self) -> &[CaptureRing] {
        &self.rings
    }

    /// The worker's copy of a frame into its ring; counted as lost if no frame is free.
    #[inline]
    pub fn push(
        &self,
        worker: usize,
        dir: Direction,
        reason: DropReason,
        ts_us: u64,
        frame: &[u8],
    ) {
        let Some(ring) = self.rings.get(worker) else {
            return;
        };
        let Some(mut f) = ring.free.pop() else {
            ring.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let keep = frame
            .len()
            .min(self.snaplen.load(Ordering::Relaxed) as usize)
            .min(SLOT);
        f.data[..keep].copy_from_slice(&frame[..keep]);
        f.len = keep as u16;
        f.orig_len = frame.len() as u32;
        f.ts_us = ts_us;
        f.dir = dir;
        f.reason = reason;
        // Cannot fail: the full queue has room for every frame of the ring.
        let _ = ring.full.push(f);
    }

    /// Arms the tap for `port` and the directions of `req` (control thread).
    fn arm(&self, port: u16, req: &CaptureRequest) {
        for ring in &self.rings {
            // Leftovers of the last capture (frames published after it was disarmed) go back.
            while let Some(f) = ring.full.pop() {
                let _ = ring.free.push(f);
            }
            // The first capture allocates the frames, here rather than on a worker.
            while ring.free.len() < ring.free.capacity() {
                let _ = ring.free.push(Box::new(Frame {
                    ts_us: 0,
                    orig_len: 0,
                    len: 0,
                    dir: Direction::Rx,
                    reason: DropReason::Truncated,
                    data: [0; SLOT],
                }));
            }
            ring.lost.store(0, Ordering::Relaxed);
        }
        self.snaplen.store(req.snaplen, Ordering::Relaxed);
        let bits = [(req.rx, RX), (req.tx, TX), (req.drop, DROP)]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |b, (_, bit)| b | bit);
        self.armed
            .store(bits | (u32::from(port) << 16), Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.armed.store(0, Ordering::Relaxed);
    }
}

/// A capture in progress.
struct Session {
    req: CaptureRequest,
    writer: PcapngWriter,
    summary: CaptureSummary,
    /// The workers' clock at the start, and the wall clock then (µs since the epoch): frame
    /// times are `wall0 + (ts - mono0)`.
    mono0: u64,
    wall0: u64,
    reply_to: SyncSender<Reply>,
}

/// The control thread's side: at most one capture at a time.
pub struct Capturer {
    tap: Arc<CaptureTap>,
    ports: Vec<String>,
    session: Option<Session>,
    /// One poll's frames from every worker's ring, merged by time before they are written
    /// (the control thread's own buffer, reused).
    batch: Vec<(usize, Box<Frame>)>,
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Capturer {
    /// The capturer of `tap`, over the ports named `ports` (in `PortId` order).
    pub fn new(tap: Arc<CaptureTap>, ports: Vec<String>) -> Capturer {
        Capturer {
            tap,
            ports,
            session: None,
            batch: Vec::new(),
        }
    }

    /// Whether a capture runs.
    pub fn is_running(&self) -> bool {
        self.session.is_some()
    }

    /// Starts the capture `req` (at `now_us` on the workers' clock), or refuses it at once
    /// through `reply_to`: a capture already runs, the port is unknown, a bound is out of range.
    pub fn start(&mut self, req: &CaptureRequest, now_us: u64, reply_to: SyncSender<Reply>) {
        let refuse = |why: String| {
            let _ = reply_to.send(Reply {
                ok: false,
                output: why,
            });
        };
        if let Some(s) = &self.session {
            return refuse(format!(
                "a capture on {} already runs (at most one at a time); try again after it",
                s.req.port
            ));
        }
        if let Err(e) = req.validate() {
            return refuse(e.to_string());
        }
        let Some(port) = self.ports.iter().position(|p| *p == req.port) else {
            return refuse(format!(
                "capture: no port `{}` (ports: {})",
                req.port,
                self.ports.join(", ")
            ));
        };
        self.tap.arm(port as u16, req);
        self.session = Some(Session {
            writer: PcapngWriter::new(&req.port, req.snaplen),
            summary: CaptureSummary {
                port: req.port.clone(),
                directions: req.directions(),
                snaplen: req.snaplen,
                file: req.file.clone(),
                ..CaptureSummary::default()
            },
            req: req.clone(),
            mono0: now_us,
            wall0: wall_us(),
            reply_to,
        });
    }

    /// Moves the workers' frames into the file; at the count or the time (`now_us` on the
    /// workers' clock), disarms and answers. Returns whether it did anything.
    pub fn poll(&mut self, now_us: u64) -> bool {
        let Some(s) = &mut self.session else {
            return false;
        };
        let mut moved = 0;
        // With several workers each ring is in time order but the rings interleave: what one
        // poll takes from all of them is written in time order (frames a worker pushes after
        // its ring was drained come in the next poll, later by about a control loop).
        let rings = self.tap.rings();
        for (i, ring) in rings.iter().enumerate() {
            for _ in 0..DRAIN_PER_LOOP {
                let Some(f) = ring.full.pop() else { break };
                self.batch.push((i, f));
            }
        }
        self.batch.sort_by_key(|(_, f)| f.ts_us);
        for (i, f) in self.batch.drain(..) {
            if s.summary.packets < s.req.count {
                let ts = s.wall0 + f.ts_us.saturating_sub(s.mono0);
                let reason = (f.dir == Direction::Drop).then(|| f.reason.name());
                s.writer
                    .packet(ts, f.dir, f.orig_len, &f.data[..usize::from(f.len)], reason);
                match f.dir {
                    Direction::Rx => s.summary.rx += 1,
                    Direction::Tx => s.summary.tx += 1,
                    Direction::Drop => s.summary.dropped += 1,
                }
                s.summary.packets += 1;
                moved += 1;
            }
            // Past the count: taken from the ring all the same, and given back unwritten.
            if let Some(ring) = rings.get(i) {
                let _ = ring.free.push(f);
            }
        }
        let elapsed_us = now_us.saturating_sub(s.mono0);
        let by_count = s.summary.packets >= s.req.count;
        if by_count || elapsed_us >= u64::from(s.req.seconds) * 1_000_000 {
            self.tap.disarm();
            if let Some(s) = self.session.take() {
                finish(s, &self.tap, by_count, elapsed_us);
            }
            return true;
        }
        moved > 0
    }
}

fn finish(s: Session, tap: &CaptureTap, by_count: bool, elapsed_us: u64) {
    let Session {
        writer,
        mut summary,
        reply_to,
        ..
    } = s;
    summary.lost = tap.rings().iter().map(CaptureRing::lost).sum();
    summary.duration_ms = elapsed_us / 1000;
    summary.stopped_by = if by_count { "count" } else { "time" }.into();
    let reply = CaptureReply {
        summary,
        pcapng: encode(writer.bytes()),
    };
    let _ = reply_to.send(match serde_json::to_string(&reply) {
        Ok(output) => Reply { ok: true, output },
        Err(e) => Reply {
            ok: false,
            output: format!("capture: encoding the reply: {e}"),
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_ctl::capture::decode;
    use std::sync::mpsc;

    fn req(port: &str, count: u32, seconds: u32) -> CaptureRequest {
        CaptureRequest {
            port: port.into(),
            rx: true,
            tx: false,
            drop: true,
            count,
            seconds,
            snaplen: 4,
            file: "-".into(),
            json: false,
        }
    }

    fn reply(rx: &mpsc::Receiver<Reply>) -> CaptureReply {
        let r = rx.try_recv().expect("an answer");
        assert!(r.ok, "{r:?}");
        serde_json::from_str(&r.output).unwrap()
    }

    #[test]
    fn off_by_default_and_armed_only_for_its_port_and_directions() {
        let tap = CaptureTap::new(1, 4);
        assert!(tap.armed().is_off());
        let mut c = Capturer::new(tap.clone(), vec!["lan".into(), "ic".into()]);
        let (tx, _rx) = mpsc::sync_channel(1);
        c.start(&req("ic", 10, 1), 0, tx);
        let a = tap.armed();
        assert!(!a.is_off() && a.rx(1) && a.drop(1));
        assert!(!a.tx(1) && !a.rx(0) && !a.drop(0));
    }

    #[test]
    fn a_full_ring_counts_lost_frames_and_never_blocks() {
        let tap = CaptureTap::new(2, 3);
        let mut c = Capturer::new(tap.clone(), vec!["lan".into()]);
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("lan", 100, 1), 1_000, tx);
        for i in 0..5u8 {
            tap.push(
                0,
                Direction::Rx,
                DropReason::Truncated,
                1_000 + u64::from(i),
                &[i; 9],
            );
        }
        tap.push(1, Direction::Drop, DropReason::NotAlias, 1_500, &[7; 2]);
        tap.push(9, Direction::Rx, DropReason::Truncated, 0, &[1]); // no such worker: ignored
        assert_eq!((tap.rings()[0].lost(), tap.rings()[1].lost()), (2, 0));
        assert!(c.poll(2_000), "frames moved");
        assert!(c.is_running());
        // Drained: room again.
        tap.push(0, Direction::Rx, DropReason::Truncated, 3_000, &[9; 1]);
        assert_eq!(tap.rings()[0].lost(), 2);
        // The time bound: 1 s after the start.
        assert!(c.poll(1_001_000));
        assert!(!c.is_running());
        assert!(tap.armed().is_off());
        let r = reply(&rx);
        let s = &r.summary;
        assert_eq!((s.packets, s.rx, s.dropped, s.lost), (5, 4, 1, 2));
        assert_eq!(s.stopped_by, "time");
        let file = decode(&r.pcapng).unwrap();
        // Snap length 4: 9-byte frames are cut to 4 and say their length was 9.
        let epb = file.windows(4).filter(|w| *w == [6, 0, 0, 0]).count();
        assert!(epb >= 5, "{epb}");
        let comment = b"drop: not_alias";
        assert!(file.windows(comment.len()).any(|w| w == comment));
    }

    /// Issue 12: with several workers the file is in time order, not ring by ring, and the
    /// count bound takes the earliest frames.
    #[test]
    fn frames_of_several_workers_are_written_in_time_order() {
        let tap = CaptureTap::new(2, 16);
        let mut c = Capturer::new(tap.clone(), vec!["lan".into()]);
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("lan", 5, 10), 0, tx);
        // Worker 0 at even times, worker 1 at odd ones; each frame's bytes are its time.
        for t in [2u8, 4, 6] {
            tap.push(
                0,
                Direction::Rx,
                DropReason::Truncated,
                u64::from(t),
                &[t; 60],
            );
        }
        for t in [1u8, 3, 5] {
            tap.push(
                1,
                Direction::Rx,
                DropReason::Truncated,
                u64::from(t),
                &[t; 60],
            );
        }
        assert!(c.poll(10));
        let r = reply(&rx);
        assert_eq!(
            (r.summary.packets, r.summary.stopped_by.as_str()),
            (5, "count")
        );
        let file = decode(&r.pcapng).unwrap();
        // Enhanced packet blocks (type 6): the frame's first byte follows a 28-byte header.
        let mut order = Vec::new();
        let mut at = 0;
        while at + 8 <= file.len() {
            let word = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap());
            let (kind, len) = (word(at), word(at + 4) as usize);
            if kind == 6 {
                order.push(file[at + 28]);
            }
            assert!(len >= 12, "block at {at}: length {len}");
            at += len;
        }
        assert_eq!(order, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_count_bound_stops_at_exactly_count_packets() {
        let tap = CaptureTap::new(1, 16);
        let mut c = Capturer::new(tap.clone(), vec!["lan".into()]);
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("lan", 3, 10), 0, tx);
        for i in 0..8u8 {
            tap.push(
                0,
                Direction::Rx,
                DropReason::Truncated,
                u64::from(i),
                &[i; 60],
            );
        }
        assert!(c.poll(10));
        let r = reply(&rx);
        assert_eq!(
            (r.summary.packets, r.summary.stopped_by.as_str()),
            (3, "count")
        );
        // A second capture starts clean: leftovers recycled, lost reset.
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("lan", 1, 10), 20, tx);
        assert!(rx.try_recv().is_err(), "not refused");
        assert_eq!(tap.rings()[0].lost(), 0);
        tap.push(0, Direction::Rx, DropReason::Truncated, 25, &[42; 60]);
        c.poll(30);
        let r = reply(&rx);
        assert_eq!(r.summary.packets, 1);
        let file = decode(&r.pcapng).unwrap();
        assert!(file.windows(4).any(|w| w == [42, 42, 42, 42]));
    }

    #[test]
    fn refusals_answer_at_once_and_change_nothing() {
        let tap = CaptureTap::new(1, 4);
        let mut c = Capturer::new(tap.clone(), vec!["lan".into()]);
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("wan", 3, 10), 0, tx);
        let r = rx.try_recv().unwrap();
        assert!(!r.ok && r.output.contains("no port `wan`"), "{r:?}");
        assert!(tap.armed().is_off());
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("lan", 0, 10), 0, tx);
        assert!(!rx.try_recv().unwrap().ok);
        let (tx, _keep) = mpsc::sync_channel(1);
        c.start(&req("lan", 3, 10), 0, tx);
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("lan", 3, 10), 0, tx);
        let r = rx.try_recv().unwrap();
        assert!(!r.ok && r.output.contains("already runs"), "{r:?}");
    }
}
