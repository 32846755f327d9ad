//! Durable consensus safety state (last voted view, highest certificate).
//!
//! Written before any vote or timeout leaves the node, so a restarted
//! validator never votes twice in a view. Two slot files are written
//! alternately, each `seq | len | body | sha256`, with one `fdatasync` per
//! write; on load the valid slot with the higher sequence wins, so a crash
//! in the middle of a write leaves the previous state intact.

use anyhow::{bail, Context, Result};
use plume_consensus::{BlsScheme, SafetyState};
use plume_protocol::codec;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const SLOTS: [&str; 2] = ["safety-a.bin", "safety-b.bin"];
/// Largest slot body accepted.
const BODY_BYTES_MAX: usize = 64 * 1024;

/// The two-slot safety file pair.
#[derive(Debug)]
pub struct SafetyFile {
    dir: PathBuf,
    seq: u64,
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

fn take<'a>(b: &mut &'a [u8]) -> Result<Option<&'a [u8]>> {
    let (&tag, rest) = b
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("safety record truncated"))?;
    match tag {
        0 => {
            *b = rest;
            Ok(None)
        }
        1 => {
            let len = u32::from_le_bytes(
                rest.get(..4)
                    .ok_or_else(|| anyhow::anyhow!("safety record truncated"))?
                    .try_into()?,
            ) as usize;
            let part = rest
                .get(4..4 + len)
                .ok_or_else(|| anyhow::anyhow!("safety record truncated"))?;
            *b = &rest[4 + len..];
            Ok(Some(part))
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
    })
}

fn read_slot(path: &Path) -> Option<(u64, SafetyState<BlsScheme>)> {
    let raw = std::fs::read(path).ok()?;
    if raw.len() < 8 + 4 + 32 {
        return None;
    }
    let seq = u64::from_le_bytes(raw[..8].try_into().ok()?);
    let len = u32::from_le_bytes(raw[8..12].try_into().ok()?) as usize;
    if len > BODY_BYTES_MAX || raw.len() != 12 + len + 32 {
        return None;
    }
    let body = &raw[12..12 + len];
    let sum = plume_crypto::hash::sha256_raw(&raw[..12 + len]);
    if sum[..] != raw[12 + len..] {
        return None;
    }
    decode(body).ok().map(|s| (seq, s))
}

impl SafetyFile {
    /// Open the pair in `dir`, returning the latest valid state if any.
    pub fn open(dir: &Path) -> Result<(SafetyFile, Option<SafetyState<BlsScheme>>)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut best: Option<(u64, SafetyState<BlsScheme>)> = None;
        for s in SLOTS {
            if let Some((seq, st)) = read_slot(&dir.join(s)) {
                if best.as_ref().is_none_or(|(b, _)| seq > *b) {
                    best = Some((seq, st));
                }
            }
        }
        let seq = best.as_ref().map_or(0, |(s, _)| *s);
        Ok((
            SafetyFile {
                dir: dir.to_path_buf(),
                seq,
            },
            best.map(|(_, s)| s),
        ))
    }

    /// Durably record `state` (one write + one fdatasync).
    pub fn persist(&mut self, state: &SafetyState<BlsScheme>) -> Result<()> {
        let body = encode(state);
        if body.len() > BODY_BYTES_MAX {
            bail!(
                "safety record of {} bytes exceeds {BODY_BYTES_MAX}",
                body.len()
            );
        }
        let seq = self.seq + 1;
        let mut raw = Vec::with_capacity(12 + body.len() + 32);
        raw.extend_from_slice(&seq.to_le_bytes());
        raw.extend_from_slice(&(body.len() as u32).to_le_bytes());
        raw.extend_from_slice(&body);
        let sum = plume_crypto::hash::sha256_raw(&raw);
        raw.extend_from_slice(&sum);
        let path = self.dir.join(SLOTS[(seq % 2) as usize]);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.write_all(&raw)
            .with_context(|| format!("writing {}", path.display()))?;
        f.sync_data()
            .with_context(|| format!("syncing {}", path.display()))?;
        self.seq = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_consensus::{Block, QuorumCert};

    fn state(v: u64) -> SafetyState<BlsScheme> {
        let g = Block::<BlsScheme>::genesis(1);
        SafetyState {
            epoch: 0,
            last_voted_view: v,
            high_qc: QuorumCert::genesis(0, &g),
            high_tc: None,
            epoch_start: g.id,
            epoch_proof: None,
        }
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
        assert_eq!(s.unwrap().last_voted_view, 5);
        // Tear the newest slot: the previous one is used.
        let newest = d.path().join(SLOTS[1]); // seq 3 -> slot b
        let mut raw = std::fs::read(&newest).unwrap();
        let n = raw.len();
        raw[n - 1] ^= 1;
        std::fs::write(&newest, &raw).unwrap();
        let (mut f, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(s.unwrap().last_voted_view, 4);
        f.persist(&state(6)).unwrap();
        let (_, s) = SafetyFile::open(d.path()).unwrap();
        assert_eq!(s.unwrap().last_voted_view, 6);
    }
}
