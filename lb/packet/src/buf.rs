//! The packet-buffer trait the data plane works on, and a heap-backed implementation.

/// A packet in a buffer with headroom in front of it, like a DPDK mbuf.
///
/// Implemented by `clua_dpdk::Mbuf` (single-segment mbufs) and by [`VecBuf`].
pub trait PacketBuf {
    /// The packet bytes, starting at the outermost header.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front, taken from headroom. The new bytes are
    /// unspecified. Returns `false` (and changes nothing) when the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. Returns `false` (and changes nothing) if the packet is
    /// shorter than `n`.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end. Returns `false` (and changes nothing) if the packet is
    /// shorter than `n`.
    fn trim(&mut self, n: usize) -> bool;
    /// The NIC's RSS hash of the packet, when the receiving port computed one.
    fn rss_hash(&self) -> Option<u32> {
        None
    }
    /// Hints the CPU to fetch the start of the packet data (DPDK `rte_prefetch0`).
    fn prefetch(&self) {}
}

/// Default headroom of a [`VecBuf`], the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;

/// A packet in a `Vec<u8>` with headroom, for tests, fuzzing, benches and simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecBuf {
    buf: Vec<u8>,
    start: usize,
    rss: Option<u32>,
}

impl VecBuf {
    /// A buffer holding `packet` behind [`DEFAULT_HEADROOM`] bytes of headroom.
    pub fn new(packet: &[u8]) -> Self {
        Self::with_headroom(packet, DEFAULT_HEADROOM)
    }

    /// A buffer holding `packet` behind `headroom` bytes of headroom.
    pub fn with_headroom(packet: &[u8], headroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + packet.len()];
        buf[headroom..].copy_from_slice(packet);
        VecBuf {
            buf,
            start: headroom,
            rss: None,
        }
    }

    /// Sets the RSS hash the buffer reports, as a NIC would.
    pub fn set_rss_hash(&mut self, hash: Option<u32>) {
        self.rss = hash;
    }

    /// Bytes available in front of the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Replaces the packet, keeping the buffer (and its capacity) for reuse.
    pub fn reset(&mut self, packet: &[u8], headroom: usize) {
        self.buf.clear();
        self.buf.resize(headroom, 0);
        self.buf.extend_from_slice(packet);
        self.start = headroom;
        self.rss = None;
    }

    /// The packet as an owned vector.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.drain(..self.start);
        self.buf
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.start {
            return false;
        }
        self.buf.truncate(self.buf.len() - n);
        true
    }
    fn rss_hash(&self) -> Option<u32> {
        self.rss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim_respect_bounds() {
        let mut b = VecBuf::with_headroom(&[1, 2, 3, 4], 2);
        assert!(!b.prepend(3));
        assert!(b.prepend(2));
        assert_eq!(b.data().len(), 6);
        b.data_mut()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
        assert!(b.adj(3));
        assert_eq!(b.data(), &[2, 3, 4]);
        assert!(!b.adj(4));
        assert!(b.trim(1));
        assert_eq!(b.data(), &[2, 3]);
        assert!(!b.trim(3));
        assert_eq!(b.clone().into_vec(), vec![2, 3]);
    }
}
