//! A segment file's framing: records are `magic | len | crc32 | payload`
//! (little-endian u32s), appended one after another.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

pub(super) const MAGIC: u32 = 0x5059_4431;
pub(super) const HEADER: usize = 12;
/// A single record larger than this is refused (a corrupt length field would
/// otherwise make recovery allocate gigabytes).
pub const MAX_RECORD: usize = 256 << 20;

pub(super) fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// The sequence number of a segment file name.
pub(super) fn seg_seq(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

/// One record, framed.
pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    buf.extend_from_slice(&MAGIC.to_le_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    buf
}

/// A scanned segment: its valid records (offset, whole length), the offset
/// where validity ends, and the number of bytes after it (torn or corrupt).
pub(super) struct Scan {
    pub records: VecDeque<(u64, u64)>,
    pub valid_end: u64,
    pub torn: u64,
}

/// Read the records of a segment's bytes, stopping at the first one whose
/// header or checksum does not hold.
pub(super) fn scan(data: &[u8]) -> Scan {
    let mut records = VecDeque::new();
    let mut off = 0usize;
    while off + HEADER <= data.len() {
        let word = |i: usize| u32::from_le_bytes(data[off + i..off + i + 4].try_into().unwrap());
        let (magic, len, crc) = (word(0), word(4) as usize, word(8));
        if magic != MAGIC || len > MAX_RECORD || off + HEADER + len > data.len() {
            break;
        }
        let payload = &data[off + HEADER..off + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push_back((off as u64, (HEADER + len) as u64));
        off += HEADER + len;
    }
    Scan {
        records,
        valid_end: off as u64,
        torn: (data.len() - off) as u64,
    }
}
