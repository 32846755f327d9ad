//! The batch log role: appends batches and certificates to the on-disk
//! log (`plume_storage::BatchLog`, `HOME/data/batches`) and makes them
//! durable in groups: everything queued since the last sync goes out with
//! one `fdatasync`, then the core hears which batches are durable (a
//! validator votes for a batch only then). Runs on its own thread so the
//! core never waits on the disk.
//!
//! Records: kind 1 is a batch (`author u32 | expires u64 | count u32 | (len
//! u32 | tx)*`),
//! kind 2 a certificate (its encoding), both keyed by the batch digest.

use super::channels::{CoreIn, LogIn};
use crate::metrics::NodeMetrics;
use anyhow::{anyhow, bail, Context, Result};
use plume_crypto::Digest;
use plume_mempool::{Batch, LogItem};
use plume_protocol::batch::BatchCertificate;
use plume_storage::{BatchLog, LogRecord};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most items written before one sync.
pub const GROUP_MAX: usize = 1024;
const KIND_BATCH: u8 = 1;
const KIND_CERT: u8 = 2;

/// The record of an item.
pub fn encode(item: &LogItem) -> LogRecord {
    match item {
        LogItem::Batch(b) => {
            let mut body =
                Vec::with_capacity(16 + b.raw.iter().map(|r| r.len() + 4).sum::<usize>());
            body.extend_from_slice(&b.author.to_le_bytes());
            body.extend_from_slice(&b.expires.to_le_bytes());
            body.extend_from_slice(&(b.raw.len() as u32).to_le_bytes());
            for r in &b.raw {
                body.extend_from_slice(&(r.len() as u32).to_le_bytes());
                body.extend_from_slice(r);
            }
            LogRecord {
                kind: KIND_BATCH,
                key: b.digest.0,
                body,
            }
        }
        LogItem::Cert(c) => LogRecord {
            kind: KIND_CERT,
            key: c.digest().0,
            body: c.to_bytes(),
        },
    }
}

/// The item of a record read back at start-up. The checksum passed, so a
/// record that does not decode, or a batch whose bytes do not hash to its
/// key, is corruption: an error.
pub fn decode(r: LogRecord) -> Result<LogItem> {
    let key = Digest(r.key);
    match r.kind {
        KIND_BATCH => {
            let b = &r.body;
            let u32_at = |p: usize| -> Result<u32> {
                Ok(u32::from_le_bytes(
                    b.get(p..p + 4)
                        .ok_or_else(|| anyhow!("batch record {key} truncated"))?
                        .try_into()
                        .expect("4 bytes"),
                ))
            };
            let author = u32_at(0)?;
            let expires = u64::from(u32_at(4)?) | (u64::from(u32_at(8)?) << 32);
            let n = u32_at(12)? as usize;
            if n > plume_protocol::batch::BATCH_TXS_MAX {
                bail!("batch record {key}: {n} items");
            }
            let mut pos = 16;
            let mut raw = Vec::with_capacity(n);
            for _ in 0..n {
                let len = u32_at(pos)? as usize;
                pos += 4;
                let item = b
                    .get(pos..pos + len)
                    .ok_or_else(|| anyhow!("batch record {key} truncated"))?;
                raw.push(item.to_vec());
                pos += len;
            }
            if pos != b.len() {
                bail!("batch record {key}: trailing bytes");
            }
            let batch = Batch::from_raw(author, expires, raw);
            if batch.digest != key {
                bail!("batch record {key}: its bytes hash to {}", batch.digest);
            }
            Ok(LogItem::Batch(Arc::new(batch)))
        }
        KIND_CERT => {
            let c = BatchCertificate::from_bytes(&r.body)
                .map_err(|e| anyhow!("certificate record {key}: {e}"))?;
            if c.digest() != key {
                bail!("certificate record {key} is for {}", c.digest());
            }
            Ok(LogItem::Cert(Arc::new(c)))
        }
        k => bail!("record {key} of unknown kind {k}"),
    }
}

/// Open the log in `dir` and read back what it holds.
pub fn open(dir: &std::path::Path) -> Result<(BatchLog, Vec<LogItem>)> {
    let (log, records) = BatchLog::open(dir)
        .with_context(|| format!("opening the batch log in {}", dir.display()))?;
    let items = records
        .into_iter()
        .map(decode)
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("reading the batch log in {}", dir.display()))?;
    Ok((log, items))
}

/// Append, sync, report, until every sender is gone or `stop` is set and
/// the queue is empty. A disk failure stops the node: a batch it cannot
/// store it must not vote for.
pub fn run(
    mut log: BatchLog,
    rx: flume::Receiver<LogIn>,
    core_tx: flume::Sender<CoreIn>,
    m: &NodeMetrics,
    stop: &AtomicBool,
) -> Result<()> {
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(x) => x,
            Err(flume::RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let t0 = Instant::now();
        let mut durable = Vec::new();
        // In queue order: a record appended after its retirement (the same
        // digest back, e.g. fetched again) must survive this group.
        let mut retire: std::collections::BTreeSet<[u8; 32]> = Default::default();
        let mut items = vec![first];
        while items.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(x) => items.push(x),
                Err(_) => break,
            }
        }
        for it in items {
            match it {
                LogIn::Append(item) => {
                    let rec = encode(&item);
                    retire.remove(&rec.key);
                    log.append(&rec)?;
                    if let LogItem::Batch(b) = &item {
                        durable.push(b.digest);
                    }
                }
                LogIn::Retire(ds) => retire.extend(ds.iter().map(|d| d.0)),
            }
        }
        log.sync()?;
        m.batch_log_syncs.inc();
        if !retire.is_empty() {
            let keys: Vec<[u8; 32]> = retire.into_iter().collect();
            log.retire(&keys)?;
        }
        m.mem.batch_log_segments.set(log.segments() as u64);
        if !durable.is_empty() && core_tx.send(CoreIn::Durable(durable)).is_err() {
            return Ok(());
        }
        m.add_busy("batchlog", t0.elapsed().as_micros() as u64);
    }
}
