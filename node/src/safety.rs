//! Durable consensus safety state: last voted view, highest certificates,
//! and the blocks above the executed height (what a restart of any number
//! of validators needs to resume).
//!
//! Written before any vote or timeout leaves the node, so a restarted
//! validator never votes twice in a view. Two slot files are written
//! alternately in place: each is preallocated (no size change, so an
//! `fdatasync` flushes no extent metadata) and holds
//! `magic | seq | len | body | sha256(magic..body)` at offset 0, bytes after
//! it are ignored. On load the valid slot with the higher sequence wins, so
//! a crash in the middle of a write leaves the previous state intact.
//!
//! If slot files exist and **neither** is valid the node refuses to start
//! (a fresh start could vote twice in a view it already voted in): the
//! error names `plume safety reset`, which writes a state that votes only
//! above a view the operator gives (the network's current view plus a
//! margin), see [`SafetyFile::reset`].

use anyhow::{bail, Context, Result};
use plume_consensus::{Block, BlsScheme, QuorumCert, SafetyState, SAFETY_BLOCKS_MAX};
use plume_protocol::codec;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const SLOTS: [&str; 2] = ["safety-a.bin", "safety-b.bin"];
const MAGIC: &[u8; 8] = b"PLSAFE2\0";
const HEADER: usize = 8 + 8 + 4;
/// Largest slot body accepted (every block at its largest).
const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bytes each slot file is preallocated to (grown when a body needs more).
const SLOT_PREALLOC: u64 = 1024 * 1024;

/// The two-slot safety file pair.
#[derive(Debug)]
pub struct SafetyFile {
    dir: PathBuf,
    seq: u64,
    files: [File; 2],
    sizes: [u64; 2],
}

fn put(b: &mut Vec<u8>, part: Option<Vec<u8>>) {
    match part {
        None => b.push(0),
        Some(p) => {
            b.push(1);
            b.extend_from_slice(&(p.len() as u32).to_le_bytes());
            b.extend_from_slice(&p);
        }
    }
}

fn take_len(b: &mut &[u8]) -> Result<usize> {
    let raw = b
        .get(..4)
        .ok_or_else(|| anyhow::anyhow!("safety record truncated"))?;
    let n = u32::from_le_bytes(raw.try_into()?) as usize;
    *b = &b[4..];
    Ok(n)
}

fn take_bytes<'a>(b: &mut &'a [u8], len: usize) -> Result<&'a [u8]> {
    let part = b
        .get(..len)
        .ok_or_else(|| anyhow::anyhow!("safety record truncated"))?;
    *b = &b[len..];
    Ok(part)
}

fn take<'a>(b: &mut &'a [u8]) -> Result<Option<&'a [u8]>> {
    let (&tag, rest) = b
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("safety record truncated"))?;
    *b = rest;
    match tag {
        0 => Ok(None),
        1 => {
            let len = take_len(b)?;
            Ok(Some(take_bytes(b, len)?))
        }
        _ => bail!("safety record: bad tag"),
    }
}

fn encode(s: &SafetyState<BlsScheme>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&s.epoch.to_le_bytes());
    b.extend_from_slice(&s.last_voted_view.to_le_bytes());
    b.extend_from_slice(s.epoch_start.as_bytes());
    put(&mut b, Some(codec::encode_qc(&s.high_qc)));
    put(&mut b, s.high_tc.as_ref().map(codec::encode_tc));
    put(
        &mut b,
        s.epoch_proof.as_ref().map(codec::encode_commit_proof),
    );
    b.extend_from_slice(&(s.blocks.len() as u32).to_le_bytes());
    for blk in &s.blocks {
        let e = codec::encode_block(blk);
        b.extend_from_slice(&(e.len() as u32).to_le_bytes());
        b.extend_from_slice(&e);
    }
    b
}

fn decode(b: &[u8]) -> Result<SafetyState<BlsScheme>> {
    if b.len() < 48 {
        bail!("safety record truncated");
    }
    let epoch = u64::from_le_bytes(b[..8].try_into().expect("8"));
    let last_voted_view = u64::from_le_bytes(b[8..16].try_into().expect("8"));
    let epoch_start = plume_crypto::Digest(b[16..48].try_into().expect("32"));
    let mut rest = &b[48..];
    let qc =
        take(&mut rest)?.ok_or_else(|| anyhow::anyhow!("safety record: no high certificate"))?;
    let high_qc = codec::decode_qc(qc).context("safety record: high certificate")?;
    let high_tc = take(&mut rest)?
        .map(codec::decode_tc)
        .transpose()
        .context("safety record: timeout certificate")?;
    let epoch_proof = take(&mut rest)?
        .map(codec::decode_commit_proof)
        .transpose()
        .context("safety record: epoch proof")?;
    let mut blocks = Vec::new();
    if !rest.is_empty() {
        let n = take_len(&mut rest)?;
        if n > SAFETY_BLOCKS_MAX {
            bail!("safety record: {n} blocks");
        }
        for _ in 0..n {
            let len = take_len(&mut rest)?;
            let raw = take_bytes(&mut rest, len)?;
            blocks.push(codec::decode_block(raw).context("safety record: block")?);
        }
    }
    if !rest.is_empty() {
        bail!("safety record: trailing bytes");
    }
    Ok(SafetyState {
        epoch,
        last_voted_view,
        high_qc,
        high_tc,
        epoch_start,
        epoch_proof,
        blocks,
    })
}

/// The state in a slot's bytes, if they hold a valid one (this format, or
/// the one before it: `seq | len | body | sha256`, exactly that long).
fn parse_slot(raw: &[u8]) -> Option<(u64, SafetyState<BlsScheme>)> {
    let (seq, body, checked) = if raw.starts_with(MAGIC) {
        let seq = u64::from_le_bytes(raw.get(8..16)?.try_into().ok()?);
        let len = u32::from_le_bytes(raw.get(16..20)?.try_into().ok()?) as usize;
        if len > BODY_BYTES_MAX {
            return None;
        }
        let end = HEADER + len;
        let sum = raw.get(end..end + 32)?;
        (
            seq,
            &raw[HEADER..end],
            plume_crypto::hash::sha256_raw(&raw[..end]) == sum,
        )
    } else {
        let seq = u64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
        let len = u32::from_le_bytes(raw.get(8..12)?.try_into().ok()?) as usize;
        if len > BODY_BYTES_MAX || raw.len() != 12 + len + 32 {
            return None;
        }
        let sum = &raw[12 + len..];
        (
            seq,
            &raw[12..12 + len],
            plume_crypto::hash::sha256_raw(&raw[..12 + len]) == sum,
        )
    };
    if !checked {
        return None;
    }
    decode(body).ok().map(|s| (seq, s))
}

fn open_slot(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Make `file` at least `len` bytes with real blocks behind them.
fn allocate(file: &File, len: u64, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a file descriptor we own; no pointers.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if r != 0 {
        // Not every file system supports it: fall back to a sparse length.
        if file.metadata()?.len() < len {
            file.set_len(len)
                .with_context(|| format!("sizing {}", path.display()))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// How to recover when both slots are unreadable.
pub fn recovery_hint(home_dir: &Path) -> String {
    format!(
        "both safety slots in {} are unreadable; refusing to start (a fresh start could vote twice in a view this validator already voted in). \
         If the disk lost them, find the network's current view (`plume query status --node <another validator's API>` shows it) \
         and run `plume safety reset --home <home> --above-view <that view + 1000>`; this validator then votes only above that view",
        home_dir.display()
    )
}

impl SafetyFile {
    /// Open the pair in `dir` (created, preallocated and the directory
    /// synced on first use), returning the latest valid state if any. Slot
    /// files that exist but hold no valid state are an error.
    pub fn open(dir: &Path) -> Result<(SafetyFile, Option<SafetyState<BlsScheme>>)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut best: Option<(u64, SafetyState<BlsScheme>)> = None;
        let mut existing = 0;
        for s in SLOTS {
            let path = dir.join(s);
            let raw = match std::fs::read(&path) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            if raw.iter().any(|b| *b != 0) {
                existing += 1;
            }
            if let Some((seq, st)) = parse_slot(&raw) {
                if best.as_ref().is_none_or(|(b, _)| seq > *b) {
                    best = Some((seq, st));
                }
            }
        }
        if existing > 0 && best.is_none() {
            bail!("{}", recovery_hint(dir));
        }
        let created = SLOTS.iter().any(|s| !dir.join(s).exists());
        let mut files = Vec::with_capacity(2);
        let mut sizes = [0u64; 2];
        for (i, s) in SLOTS.iter().enumerate() {
            let path = dir.join(s);
            let f = open_slot(&path)?;
            let len = f.metadata()?.len();
            if len < SLOT_PREALLOC {
                allocate(&f, SLOT_PREALLOC, &path)?;
                f.sync_all()
                    .with_context(|| format!("syncing {}", path.display()))?;
            }
            sizes[i] = f.metadata()?.len();
            files.push(f);
        }
        if created {
            sync_dir(dir)?;
        }
        let seq = best.as_ref().map_or(0, |(s, _)| *s);
        let [a, b]: [File; 2] = files.try_into().expect("two slots");
        Ok((
            SafetyFile {
                dir: dir.to_path_buf(),
                seq,
                files: [a, b],
                sizes,
            },
            best.map(|(_, s)| s),
        ))
    }

    /// Durably record `state`: one in-place write and one fdatasync.
    pub fn persist(&mut self, state: &SafetyState<BlsScheme>) -> Result<()> {
        let body = encode(state);
        if body.len() > BODY_BYTES_MAX {
            bail!(
                "safety record of {} bytes exceeds {BODY_BYTES_MAX}",
                body.len()
            );
        }
        let seq = self.seq + 1;
        let mut raw = Vec::with_capacity(HEADER + body.len() + 32);
        raw.extend_from_slice(MAGIC);
        raw.extend_from_slice(&seq.to_le_bytes());
        raw.extend_from_slice(&(body.len() as u32).to_le_bytes());
        raw.extend_from_slice(&body);
        let sum = plume_crypto::hash::sha256_raw(&raw);
        raw.extend_from_slice(&sum);
        let slot = (seq % 2) as usize;
        let path = self.dir.join(SLOTS[slot]);
        let file = &self.files[slot];
        if raw.len() as u64 > self.sizes[slot] {
            let want = (raw.len() as u64).next_power_of_two();
            allocate(file, want, &path)?;
            self.sizes[slot] = file.metadata()?.len();
        }
        file.write_all_at(&raw, 0)
            .with_context(|| format!("writing {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("syncing {}", path.display()))?;
        self.seq = seq;
        Ok(())
    }

    /// `plume safety reset`: replace an unreadable (or, with `force`, any)
    /// safety state with one that has voted in every view up to
    /// `above_view`, so the validator votes only above it. It keeps no
    /// certificate or block: it resumes from its store and catches up from
    /// its peers.
    pub fn reset(dir: &Path, chain: u64, above_view: u64, force: bool) -> Result<()> {
        if !force {
            if let Ok((_, Some(s))) = SafetyFile::open(dir) {
                bail!(
                    "{} holds a valid safety state (last voted view {}); not replacing it without --force",
                    dir.display(),
                    s.last_voted_view
                );
            }
        }
        for s in SLOTS {
            let p = dir.join(s);
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        let (mut f, _) = SafetyFile::open(dir)?;
        let g = Block::<BlsScheme>::genesis(chain);
        f.persist(&SafetyState {
            epoch: 0,
            last_voted_view: above_view,
            high_qc: QuorumCert::genesis(0, &g),
            high_tc: None,
            epoch_start: g.id,
            epoch_proof: None,
            blocks: Vec::new(),
        })?;
        sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(v: u64) -> SafetyState<BlsScheme> {
        let g = Block::<BlsScheme>::genesis(1);
        SafetyState {
            epoch: 0,
            last_voted_view: v,
            high_qc: QuorumCert::genesis(0, &g),
            high_tc: None,
            epoch_start: g.id,
            epoch_proof: None,
            blocks: vec![
                Block::new(
                    0,
                    v,
                    1,
                    vec![plume_crypto::Digest([7; 32])],
                    QuorumCert::genesis(0, &g)
                );
                (v % 3) as usize
            ],
        }
    }

    fn corrupt(path: &Path) {
        let mut raw = std::fs::read(path).unwrap();
        raw[HEADER + 3] ^= 1;
        std::fs::write(path, &raw).unwrap();
    }

    #[test]
    fn latest_valid_slot_wins_and_torn_writes_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, s) = SafetyFile::open(d.path()).unwrap();
        assert!(s.is_none());
        f.persist(&state(3)).unwrap();
        f.persist(&state(4)).unwrap();
        f.persist(&state(5)).unwrap();
        let (_, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(encode(&s.unwrap()), encode(&state(5)), "blocks included");
        // Slots are written in place, preallocated.
        let len = std::fs::metadata(d.path().join(SLOTS[0])).unwrap().len();
        assert!(len >= SLOT_PREALLOC);
        // Tear the newest slot: the previous one is used.
        corrupt(&d.path().join(SLOTS[1])); // seq 3 -> slot b
        let (mut f, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(s.unwrap().last_voted_view, 4);
        f.persist(&state(6)).unwrap();
        let (_, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(s.unwrap().last_voted_view, 6);
    }

    #[test]
    fn both_slots_unreadable_refuses_until_reset() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, _) = SafetyFile::open(d.path()).unwrap();
        f.persist(&state(8)).unwrap();
        f.persist(&state(9)).unwrap();
        drop(f);
        for s in SLOTS {
            corrupt(&d.path().join(s));
        }
        let e = SafetyFile::open(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("refusing to start") && e.contains("plume safety reset"),
            "{e}"
        );
        // A reset while a valid state exists needs --force.
        let other = tempfile::tempdir().unwrap();
        let (mut g, _) = SafetyFile::open(other.path()).unwrap();
        g.persist(&state(2)).unwrap();
        assert!(SafetyFile::reset(other.path(), 1, 50, false).is_err());
        SafetyFile::reset(d.path(), 1, 5000, false).unwrap();
        let (_, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(s.unwrap().last_voted_view, 5000);
    }

    #[test]
    fn the_previous_format_is_still_read() {
        let d = tempfile::tempdir().unwrap();
        let mut st = state(7);
        st.blocks.clear();
        let body = encode(&st);
        // v1 body: no block list.
        let body = &body[..body.len() - 4];
        let mut raw = Vec::new();
        raw.extend_from_slice(&3u64.to_le_bytes());
        raw.extend_from_slice(&(body.len() as u32).to_le_bytes());
        raw.extend_from_slice(body);
        let sum = plume_crypto::hash::sha256_raw(&raw);
        raw.extend_from_slice(&sum);
        std::fs::write(d.path().join(SLOTS[1]), &raw).unwrap();
        let (mut f, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(encode(&s.unwrap()), encode(&st));
        f.persist(&state(8)).unwrap();
        let (_, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(s.unwrap().last_voted_view, 8);
    }
}
