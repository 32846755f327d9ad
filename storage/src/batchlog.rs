//! An append-only log of opaque records (the node keeps batches and their
//! certificates in it), written in segments and made durable in groups:
//! many appends, one `fdatasync`.
//!
//! Record: `len u32 | kind u8 | key [32] | body | checksum [8]`, the
//! checksum a SHA-256 prefix over kind, key and body. Segments are files
//! `NNNNNNNNNNNNNNNN.log` of at most [`SEGMENT_BYTES_MAX`] bytes (a record
//! larger than that gets a segment of its own).
//!
//! Recovery ([`BatchLog::open`]) reads every segment in order. A damaged
//! record at the end of the newest segment is a torn write (the process
//! died mid-append, before the record was synced): the tail is cut off
//! there. A damaged record anywhere else is corruption: an error naming
//! the file and the offset, never a silent skip.
//!
//! Space: [`BatchLog::retire`] marks keys as no longer needed; a segment
//! other than the current one whose every key is retired is deleted.
//!
//! Storage does not interpret records: kinds, keys and bodies are the
//! caller's.

use plume_crypto::{hash_parts, Domain};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Segment size at which a new segment starts.
pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest record body accepted (a full batch frame).
pub const RECORD_BYTES_MAX: usize = 17 * 1024 * 1024;
const HEADER_LEN: usize = 4 + 1 + 32;
const CHECKSUM_LEN: usize = 8;

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// The caller's record type.
    pub kind: u8,
    /// The caller's key (several records may share one).
    pub key: [u8; 32],
    /// The caller's bytes.
    pub body: Vec<u8>,
}

/// Why the log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file system failed.
    #[error("batch log {path}: {err}")]
    Io {
        /// The file or directory.
        path: String,
        /// What failed.
        err: io::Error,
    },
    /// A record before the end of the log is damaged.
    #[error("batch log {path}: damaged record at offset {offset} ({why}); the log is corrupt")]
    Corrupt {
        /// The segment file.
        path: String,
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// A record body is over [`RECORD_BYTES_MAX`].
    #[error("batch log: record of {0} bytes is over the limit")]
    TooLarge(usize),
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |err| LogError::Io {
        path: path.display().to_string(),
        err,
    }
}

fn checksum(kind: u8, key: &[u8; 32], body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let d = hash_parts(Domain::State, &[b"batch-log", &[kind], key, body]);
    d.0[..CHECKSUM_LEN].try_into().expect("8 bytes")
}

#[derive(Debug, Default)]
struct Segment {
    /// Keys written to this segment and not yet retired.
    live: HashSet<[u8; 32]>,
}

/// The log (see the module doc).
#[derive(Debug)]
pub struct BatchLog {
    dir: PathBuf,
    current: File,
    current_id: u64,
    current_len: u64,
    /// A segment that was rotated away and still needs its sync.
    unsynced_old: Option<File>,
    dirty: bool,
    segments: BTreeMap<u64, Segment>,
    /// Segments holding records of each live key.
    where_is: HashMap<[u8; 32], Vec<u64>>,
    segment_bytes_max: u64,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl BatchLog {
    /// Open (or create) the log in `dir` and return every record in it, in
    /// write order.
    pub fn open(dir: &Path) -> Result<(BatchLog, Vec<LogRecord>), LogError> {
        Self::open_with_segment_bytes(dir, SEGMENT_BYTES_MAX)
    }

    /// [`BatchLog::open`] with another segment size.
    pub fn open_with_segment_bytes(
        dir: &Path,
        segment_bytes_max: u64,
    ) -> Result<(BatchLog, Vec<LogRecord>), LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse::<u64>().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut records = Vec::new();
        let mut segments = BTreeMap::new();
        let mut where_is: HashMap<[u8; 32], Vec<u64>> = HashMap::new();
        let mut last_len = 0;
        for (pos, &id) in ids.iter().enumerate() {
            let path = segment_path(dir, id);
            let newest = pos + 1 == ids.len();
            let (recs, good_len) = read_segment(&path, newest)?;
            let mut seg = Segment::default();
            for r in &recs {
                seg.live.insert(r.key);
                where_is.entry(r.key).or_default().push(id);
            }
            records.extend(recs);
            segments.insert(id, seg);
            if newest {
                last_len = good_len;
            }
        }
        let (current_id, current, current_len) = match ids.last() {
            Some(&id) => {
                let path = segment_path(dir, id);
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                // Cut a torn tail, then append after the last good record.
                f.set_len(last_len).map_err(io_err(&path))?;
                f.sync_data().map_err(io_err(&path))?;
                (id, f, last_len)
            }
            None => {
                let path = segment_path(dir, 0);
                let f = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                sync_dir(dir)?;
                segments.insert(0, Segment::default());
                (0, f, 0)
            }
        };
        let mut log = BatchLog {
            dir: dir.to_path_buf(),
            current,
            current_id,
            current_len,
            unsynced_old: None,
            dirty: false,
            segments,
            where_is,
            segment_bytes_max,
        };
        log.seek_end()?;
        Ok((log, records))
    }

    fn seek_end(&mut self) -> Result<(), LogError> {
        use std::io::Seek;
        let path = segment_path(&self.dir, self.current_id);
        self.current
            .seek(io::SeekFrom::Start(self.current_len))
            .map_err(io_err(&path))?;
        Ok(())
    }

    /// Append a record (buffered by the OS; durable after the next
    /// [`BatchLog::sync`]).
    pub fn append(&mut self, r: &LogRecord) -> Result<(), LogError> {
        if r.body.len() > RECORD_BYTES_MAX {
            return Err(LogError::TooLarge(r.body.len()));
        }
        let len = (HEADER_LEN + r.body.len() + CHECKSUM_LEN) as u64;
        if self.current_len > 0 && self.current_len + len > self.segment_bytes_max {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(len as usize);
        buf.extend_from_slice(&(r.body.len() as u32).to_le_bytes());
        buf.push(r.kind);
        buf.extend_from_slice(&r.key);
        buf.extend_from_slice(&r.body);
        buf.extend_from_slice(&checksum(r.kind, &r.key, &r.body));
        let path = segment_path(&self.dir, self.current_id);
        self.current.write_all(&buf).map_err(io_err(&path))?;
        self.current_len += len;
        self.dirty = true;
        self.segments
            .entry(self.current_id)
            .or_default()
            .live
            .insert(r.key);
        let segs = self.where_is.entry(r.key).or_default();
        if segs.last() != Some(&self.current_id) {
            segs.push(self.current_id);
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let next = self.current_id + 1;
        let path = segment_path(&self.dir, next);
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let old = std::mem::replace(&mut self.current, f);
        if self.dirty {
            self.unsynced_old = Some(old);
        }
        self.current_id = next;
        self.current_len = 0;
        self.segments.insert(next, Segment::default());
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Make every appended record durable (one `fdatasync`, two across a
    /// segment change).
    pub fn sync(&mut self) -> Result<(), LogError> {
        if let Some(old) = self.unsynced_old.take() {
            old.sync_data()
                .map_err(io_err(&segment_path(&self.dir, self.current_id - 1)))?;
        }
        if self.dirty {
            self.current
                .sync_data()
                .map_err(io_err(&segment_path(&self.dir, self.current_id)))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The records under `key` are no longer needed. Segments (but the
    /// current one) left without live keys are deleted.
    pub fn retire(&mut self, keys: &[[u8; 32]]) -> Result<(), LogError> {
        let mut emptied = Vec::new();
        for k in keys {
            for id in self.where_is.remove(k).unwrap_or_default() {
                if let Some(seg) = self.segments.get_mut(&id) {
                    seg.live.remove(k);
                    if seg.live.is_empty() && id != self.current_id {
                        emptied.push(id);
                    }
                }
            }
        }
        emptied.sort_unstable();
        emptied.dedup();
        for id in &emptied {
            self.segments.remove(id);
            let path = segment_path(&self.dir, *id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        if !emptied.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Segment files on disk.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Keys with records not yet retired.
    pub fn live_keys(&self) -> usize {
        self.where_is.len()
    }
}

/// Read one segment; for the newest, a damaged tail ends the good part.
fn read_segment(path: &Path, newest: bool) -> Result<(Vec<LogRecord>, u64), LogError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        match parse_record(&bytes[pos..]) {
            Ok((r, used)) => {
                out.push(r);
                pos += used;
            }
            Err(why) => {
                if newest {
                    // A torn write: everything from here was never synced.
                    break;
                }
                return Err(LogError::Corrupt {
                    path: path.display().to_string(),
                    offset: pos as u64,
                    why,
                });
            }
        }
    }
    Ok((out, pos as u64))
}

fn parse_record(b: &[u8]) -> Result<(LogRecord, usize), &'static str> {
    if b.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err("truncated header");
    }
    let len = u32::from_le_bytes(b[..4].try_into().expect("4")) as usize;
    if len > RECORD_BYTES_MAX {
        return Err("length over the limit");
    }
    let total = HEADER_LEN + len + CHECKSUM_LEN;
    if b.len() < total {
        return Err("truncated body");
    }
    let kind = b[4];
    let key: [u8; 32] = b[5..37].try_into().expect("32");
    let body = &b[HEADER_LEN..HEADER_LEN + len];
    let sum: [u8; CHECKSUM_LEN] = b[HEADER_LEN + len..total].try_into().expect("8");
    if checksum(kind, &key, body) != sum {
        return Err("checksum mismatch");
    }
    Ok((
        LogRecord {
            kind,
            key,
            body: body.to_vec(),
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u8, len: usize) -> LogRecord {
        LogRecord {
            kind: 1 + i % 2,
            key: [i; 32],
            body: vec![i; len],
        }
    }

    #[test]
    fn records_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, got) = BatchLog::open(dir.path()).unwrap();
        assert!(got.is_empty());
        for i in 0..10 {
            log.append(&rec(i, 100 + i as usize)).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let (mut log, got) = BatchLog::open(dir.path()).unwrap();
        assert_eq!(
            got,
            (0..10)
                .map(|i| rec(i, 100 + i as usize))
                .collect::<Vec<_>>()
        );
        // Appends continue after the old records.
        log.append(&rec(20, 5)).unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, got) = BatchLog::open(dir.path()).unwrap();
        assert_eq!(got.len(), 11);
        assert_eq!(got[10], rec(20, 5));
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_elsewhere_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = BatchLog::open(dir.path()).unwrap();
        for i in 0..3 {
            log.append(&rec(i, 50)).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        let full = fs::read(&path).unwrap();
        // Half a record at the end (a crash mid-append).
        let mut torn = full.clone();
        torn.extend_from_slice(&full[..30]);
        fs::write(&path, &torn).unwrap();
        let (mut log, got) = BatchLog::open(dir.path()).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(fs::metadata(&path).unwrap().len(), full.len() as u64, "cut");
        log.append(&rec(9, 10)).unwrap();
        log.sync().unwrap();
        drop(log);
        assert_eq!(BatchLog::open(dir.path()).unwrap().1.len(), 4);
        // A flipped byte in an older segment is corruption.
        let (mut log, _) = BatchLog::open(dir.path()).unwrap();
        log.rotate().unwrap();
        log.append(&rec(10, 10)).unwrap();
        log.sync().unwrap();
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN + 3] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = BatchLog::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("corrupt") && err.contains("offset 0"), "{err}");
    }

    #[test]
    fn retired_segments_are_deleted_but_not_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = BatchLog::open(dir.path()).unwrap();
        log.append(&rec(1, 10)).unwrap();
        log.append(&rec(2, 10)).unwrap();
        log.rotate().unwrap();
        log.append(&rec(3, 10)).unwrap();
        log.sync().unwrap();
        assert_eq!(log.segments(), 2);
        log.retire(&[[1; 32]]).unwrap();
        assert_eq!(log.segments(), 2, "key 2 still lives in segment 0");
        log.retire(&[[2; 32], [3; 32]]).unwrap();
        assert_eq!(
            log.segments(),
            1,
            "segment 0 deleted; the current one stays"
        );
        assert!(!segment_path(dir.path(), 0).exists());
        assert_eq!(log.live_keys(), 0);
        drop(log);
        let (_, got) = BatchLog::open(dir.path()).unwrap();
        assert_eq!(
            got,
            vec![rec(3, 10)],
            "retired records in the current segment remain until it is"
        );
    }

    #[test]
    fn big_records_rotate_segments_and_limits_hold() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = BatchLog::open_with_segment_bytes(dir.path(), 4096).unwrap();
        assert!(matches!(
            log.append(&LogRecord {
                kind: 1,
                key: [0; 32],
                body: vec![0; RECORD_BYTES_MAX + 1]
            }),
            Err(LogError::TooLarge(_))
        ));
        // 3 KiB records in 4 KiB segments: one segment each.
        for i in 0..3u8 {
            log.append(&rec(i, 3000)).unwrap();
        }
        log.sync().unwrap();
        assert_eq!(log.segments(), 3);
        drop(log);
        assert_eq!(BatchLog::open(dir.path()).unwrap().1.len(), 3);
    }
}
