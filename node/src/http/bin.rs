//! The binary submission endpoint for high-rate clients: `GET /bin` with
//! `Connection: Upgrade` and `Upgrade: plume-bin/1` switches an API
//! connection to length-prefixed frames in both directions (no JSON, no
//! hex, no WebSocket masking). `GET /bin?finality=1` also streams every
//! committed block's transaction hashes.
//!
//! Every frame is `[u32 LE length][u8 kind][body]`, the length counting
//! the kind byte and the body.
//!
//! | kind | direction | body |
//! | --- | --- | --- |
//! | `0x01` submit | client -> node | one transaction's bytes |
//! | `0x03` ping | client -> node | empty (answered with `0x84`) |
//! | `0x81` ack | node -> client | `u64` index of the submission on this connection (from 0), `u8` 0 then the 32-byte hash, or `u8` 1 then the `i64` error code (the JSON-RPC codes) and a UTF-8 message |
//! | `0x82` block | node -> client | `u64` height, 32-byte block id, 32-byte state root, `u32` n, n 32-byte transaction hashes |
//! | `0x83` error | node -> client | `i64` code and a UTF-8 message; the node closes the connection after it |
//! | `0x84` pong | node -> client | empty |
//!
//! Submissions are pipelined: the client sends without waiting, and the
//! acknowledgements come back as the admissions finish (in order within
//! each group the node read together, groups possibly out of order; the
//! index says which). Bounds: a frame of at most one transaction
//! ([`plume_protocol::tx::TX_BYTES_MAX`] bytes); at most
//! [`Limits::batch_calls_max`] submissions checked as one group; at most
//! [`BIN_INFLIGHT_MAX`] submissions and [`BIN_INFLIGHT_BYTES_MAX`] bytes of
//! them per connection awaiting their acknowledgement (past either the
//! node stops reading from the connection);
//! the client's call rate (one call per transaction, refused with 1013);
//! the connection counts with the WebSocket connections; the finality
//! stream's queued bytes are bounded like a WebSocket subscriber's (cut
//! with an `0x83` frame and the reason). A connection with no finality
//! stream that sends nothing for [`Limits::ws_idle`] is closed.

use super::conn::{Ctx, Guard, WsSlot};
use super::ws::{Out, Sink, SinkState, WS_QUEUE_NOTES_MAX};
use super::{codes, ApiError, Pending, Topic};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use plume_crypto::Digest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The `Upgrade` token.
pub const PROTOCOL: &str = "plume-bin/1";
/// Client frame: a transaction to submit.
pub const SUBMIT: u8 = 0x01;
/// Client frame: ping.
pub const PING: u8 = 0x03;
/// Node frame: a submission's outcome.
pub const ACK: u8 = 0x81;
/// Node frame: a committed block's transaction hashes.
pub const BLOCK: u8 = 0x82;
/// Node frame: the connection ends, with a reason.
pub const ERROR: u8 = 0x83;
/// Node frame: pong.
pub const PONG: u8 = 0x84;
/// Most submissions of one connection awaiting their acknowledgement.
pub const BIN_INFLIGHT_MAX: usize = 8192;
/// Most transaction bytes of one connection read and not yet acknowledged
/// (a group is also cut here).
pub const BIN_INFLIGHT_BYTES_MAX: usize = 8 * 1024 * 1024;

fn frame(kind: u8, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(1 + body.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

/// An `0x81` frame for submission `index` with `outcome`.
pub fn ack_frame(index: u64, outcome: &Result<Digest, ApiError>, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(41);
    body.extend_from_slice(&index.to_le_bytes());
    match outcome {
        Ok(h) => {
            body.push(0);
            body.extend_from_slice(h.as_bytes());
        }
        Err(e) => {
            body.push(1);
            body.extend_from_slice(&e.code.to_le_bytes());
            body.extend_from_slice(e.message.as_bytes());
        }
    }
    frame(ACK, &body, out);
}

/// An `0x82` frame for a committed block.
pub fn block_frame<'a>(
    height: u64,
    id: &Digest,
    root: &Digest,
    hashes: impl ExactSizeIterator<Item = &'a Digest>,
) -> Bytes {
    let mut body = Vec::with_capacity(8 + 64 + 4 + 32 * hashes.len());
    body.extend_from_slice(&height.to_le_bytes());
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(root.as_bytes());
    body.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
    for h in hashes {
        body.extend_from_slice(h.as_bytes());
    }
    let mut out = Vec::with_capacity(5 + body.len());
    frame(BLOCK, &body, &mut out);
    out.into()
}

fn error_frame(code: i64, message: &str) -> Vec<u8> {
    let mut body = code.to_le_bytes().to_vec();
    body.extend_from_slice(message.as_bytes());
    let mut out = Vec::new();
    frame(ERROR, &body, &mut out);
    out
}

/// Acknowledgement frames, holding the in-flight permits of what they
/// acknowledge until they are written.
type Acked = (Vec<u8>, Permits);

/// In-flight permits: submissions and their bytes.
type Permits = (
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::OwnedSemaphorePermit,
);

/// Write `first` and whatever else is ready (up to 256 KiB) in one write;
/// permits are released once written. False: the write failed or timed
/// out.
async fn write_acks(
    wr: &mut tokio::io::WriteHalf<TokioIo<hyper::upgrade::Upgraded>>,
    first: Acked,
    more: &flume::Receiver<Acked>,
    limits: &super::Limits,
) -> bool {
    let mut held = vec![first.1];
    let mut buf = first.0;
    while buf.len() < 256 * 1024 {
        match more.try_recv() {
            Ok((b, p)) => {
                buf.extend_from_slice(&b);
                held.push(p);
            }
            Err(_) => break,
        }
    }
    let ok = matches!(
        tokio::time::timeout(limits.ws_write_timeout, wr.write_all(&buf)).await,
        Ok(Ok(()))
    );
    drop(held);
    ok
}

/// Why the reading side ended.
enum End {
    /// The client closed.
    Closed,
    /// The client broke the protocol: tell it and close.
    Bad(i64, String),
}

fn now_ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// Run one upgraded `/bin` connection until it closes or is cut.
pub(super) async fn session(
    upgraded: hyper::upgrade::Upgraded,
    cx: Arc<Ctx>,
    client: Arc<Guard>,
    _slot: WsSlot,
    finality: bool,
) {
    let limits = cx.limits.clone();
    let (rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
    let (note_tx, note_rx) = flume::bounded::<Out>(WS_QUEUE_NOTES_MAX);
    let state = Arc::new(SinkState::new(limits.ws_queue_bytes_max));
    if finality {
        if let Err(e) = cx
            .node
            .subscribe(Topic::BlocksBinary, Sink::new(0, note_tx, state.clone()))
        {
            let _ = tokio::time::timeout(
                limits.ws_write_timeout,
                wr.write_all(&error_frame(e.code, &e.message)),
            )
            .await;
            return;
        }
    } else {
        drop(note_tx);
    }
    // Acknowledgements: each carries the in-flight permits of what it
    // acknowledges, released only once it is written, so what waits here
    // is bounded by those permits.
    let (ack_tx, ack_rx) = flume::unbounded::<Acked>();
    // Held here so the queue never reads as closed while the reader's end
    // is on its way (the session ends on `end_rx`, not on this queue).
    let _ack_keep = ack_tx.clone();
    let (end_tx, end_rx) = flume::bounded::<End>(1);
    let t0 = Instant::now();
    let heard = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(read_loop(
        rd,
        cx.clone(),
        client.clone(),
        ack_tx,
        end_tx,
        heard.clone(),
        t0,
    ));
    let idle_check = (limits.ws_idle / 3).max(std::time::Duration::from_millis(10));
    loop {
        tokio::select! {
            () = state.cut_notified() => {
                let reason = state.cut_reason().unwrap_or_else(|| "closed".into());
                cx.node.shed("ws_subscriber_too_slow");
                let _ = tokio::time::timeout(
                    limits.ws_write_timeout,
                    wr.write_all(&error_frame(codes::UNAVAILABLE, &reason)),
                )
                .await;
                break;
            }
            a = ack_rx.recv_async() => {
                let Ok(a) = a else { break };
                if !write_acks(&mut wr, a, &ack_rx, &limits).await {
                    cx.node.shed("ws_write_timeout");
                    break;
                }
            }
            n = note_rx.recv_async(), if finality => {
                let Ok(n) = n else { break };
                state.taken(n.len());
                let bytes = match n {
                    Out::Bin(b) => b,
                    Out::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                };
                if !matches!(
                    tokio::time::timeout(limits.ws_write_timeout, wr.write_all(&bytes)).await,
                    Ok(Ok(()))
                ) {
                    cx.node.shed("ws_write_timeout");
                    state.cut("write failed or timed out");
                    break;
                }
            }
            e = end_rx.recv_async() => {
                // The reader queued every acknowledgement before it ended:
                // write what is still waiting first (a client that only
                // half-closed reads them).
                while let Ok(a) = ack_rx.try_recv() {
                    if !write_acks(&mut wr, a, &ack_rx, &limits).await {
                        break;
                    }
                }
                if let Ok(End::Bad(code, msg)) = e {
                    cx.node.shed("bin_bad_frame");
                    let _ = tokio::time::timeout(
                        limits.ws_write_timeout,
                        wr.write_all(&error_frame(code, &msg)),
                    )
                    .await;
                }
                break;
            }
            () = tokio::time::sleep(idle_check), if !finality => {
                let silent = now_ms(t0).saturating_sub(heard.load(Ordering::Relaxed));
                if silent >= limits.ws_idle.as_millis() as u64 {
                    cx.node.shed("ws_idle");
                    let _ = tokio::time::timeout(
                        limits.ws_write_timeout,
                        wr.write_all(&error_frame(
                            codes::UNAVAILABLE,
                            &format!("nothing heard for {:?}", limits.ws_idle),
                        )),
                    )
                    .await;
                    break;
                }
            }
        }
    }
    state.cut("connection closed");
    reader.abort();
    let _ = tokio::time::timeout(limits.ws_write_timeout, wr.shutdown()).await;
}

async fn read_loop(
    rd: tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>,
    cx: Arc<Ctx>,
    client: Arc<Guard>,
    acks: flume::Sender<Acked>,
    end: flume::Sender<End>,
    heard: Arc<AtomicU64>,
    t0: Instant,
) {
    let why = read_frames(rd, &cx, &client, &acks, &heard, t0).await;
    let _ = end.try_send(why);
}

async fn read_frames(
    rd: tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>,
    cx: &Arc<Ctx>,
    client: &Arc<Guard>,
    acks: &flume::Sender<Acked>,
    heard: &AtomicU64,
    t0: Instant,
) -> End {
    // The submissions in flight: aborted with this task when the session
    // ends (dropping the set), awaited when the client closes its side so
    // their acknowledgements are still sent.
    let mut tasks = tokio::task::JoinSet::new();
    let why = read_into(rd, cx, client, acks, heard, t0, &mut tasks).await;
    if matches!(why, End::Closed) {
        while tasks.join_next().await.is_some() {}
    }
    why
}

async fn read_into(
    rd: tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>,
    cx: &Arc<Ctx>,
    client: &Arc<Guard>,
    acks: &flume::Sender<Acked>,
    heard: &AtomicU64,
    t0: Instant,
    tasks: &mut tokio::task::JoinSet<()>,
) -> End {
    let max = plume_protocol::tx::TX_BYTES_MAX;
    let group_max = cx.limits.batch_calls_max.clamp(1, BIN_INFLIGHT_MAX);
    let inflight = Arc::new(tokio::sync::Semaphore::new(BIN_INFLIGHT_MAX));
    let inflight_bytes = Arc::new(tokio::sync::Semaphore::new(BIN_INFLIGHT_BYTES_MAX));
    let group_bytes_max = BIN_INFLIGHT_BYTES_MAX / 2;
    let mut group_bytes = 0usize;
    let mut rd = tokio::io::BufReader::with_capacity(256 * 1024, rd);
    let mut next_index = 0u64;
    let mut group: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut head = [0u8; 4];
        if rd.read_exact(&mut head).await.is_err() {
            return End::Closed;
        }
        let len = u32::from_le_bytes(head) as usize;
        if len == 0 || len > 1 + max {
            return End::Bad(
                codes::OVERSIZED,
                format!("a frame of {len} bytes: frames hold 1 to {} bytes", 1 + max),
            );
        }
        let mut kind = [0u8; 1];
        let mut body = vec![0u8; len - 1];
        if rd.read_exact(&mut kind).await.is_err() || rd.read_exact(&mut body).await.is_err() {
            return End::Closed;
        }
        heard.store(now_ms(t0), Ordering::Relaxed);
        match kind[0] {
            SUBMIT => {
                group_bytes += body.len();
                group.push(body);
            }
            PING => {
                // A call like any other (rate and in-flight bounds).
                if !cx.allow(client.ip, 1) {
                    cx.node.shed("api_rate_limited");
                    continue;
                }
                let Ok(p) = inflight.clone().acquire_many_owned(1).await else {
                    return End::Closed;
                };
                let Ok(pb) = inflight_bytes.clone().acquire_many_owned(5).await else {
                    return End::Closed;
                };
                let mut pong = Vec::with_capacity(5);
                frame(PONG, &[], &mut pong);
                let _ = acks.send((pong, (p, pb)));
            }
            k => {
                return End::Bad(
                    codes::INVALID_REQUEST,
                    format!("unknown frame kind {k:#04x}"),
                )
            }
        }
        // Check what arrived together as one group: dispatch once no
        // whole frame is buffered, or the group is full.
        let buffered = rd.buffer();
        let whole_next = buffered.len() >= 4
            && buffered.len()
                >= 4 + u32::from_le_bytes([buffered[0], buffered[1], buffered[2], buffered[3]])
                    as usize;
        if group.is_empty()
            || (whole_next && group.len() < group_max && group_bytes < group_bytes_max)
        {
            continue;
        }
        let txs = std::mem::take(&mut group);
        let n = txs.len();
        let bytes = std::mem::take(&mut group_bytes).max(1);
        let Ok(permits) = inflight.clone().acquire_many_owned(n as u32).await else {
            return End::Closed;
        };
        let Ok(byte_permits) = inflight_bytes
            .clone()
            .acquire_many_owned(bytes.min(BIN_INFLIGHT_BYTES_MAX) as u32)
            .await
        else {
            return End::Closed;
        };
        let first = next_index;
        next_index += n as u64;
        let (cx, client, acks) = (cx.clone(), client.clone(), acks.clone());
        tasks.spawn(async move {
            let out = submit_group(&cx, &client, first, txs).await;
            let _ = acks.send((out, (permits, byte_permits)));
        });
        // Reap the finished ones (the set stays as large as what is in
        // flight).
        while tasks.try_join_next().is_some() {}
    }
}

/// Check and queue one group; its acknowledgement frames.
async fn submit_group(cx: &Arc<Ctx>, client: &Guard, first: u64, txs: Vec<Vec<u8>>) -> Vec<u8> {
    let n = txs.len();
    let all = |e: ApiError| {
        let mut out = Vec::with_capacity(n * 64);
        for i in 0..n {
            ack_frame(first + i as u64, &Err(e.clone()), &mut out);
        }
        out
    };
    if !cx.allow(client.ip, n) {
        cx.node.shed("api_rate_limited");
        return all(ApiError::new(
            codes::RATE_LIMITED,
            format!(
                "more than {} calls per second from this client; slow down",
                cx.limits.calls_per_s
            ),
        ));
    }
    let Ok(Ok(permit)) =
        tokio::time::timeout(cx.limits.reader_wait, cx.readers.clone().acquire_owned()).await
    else {
        cx.node.shed("api_readers_busy");
        return all(ApiError::new(
            codes::UNAVAILABLE,
            "node busy: every store reader is in use; retry",
        ));
    };
    let node = cx.node.clone();
    let pending: Vec<Result<Pending, ApiError>> = match tokio::task::spawn_blocking(move || {
        let _permit = permit;
        node.submit_raw(txs)
    })
    .await
    {
        Ok(p) => p,
        Err(_) => return all(ApiError::new(codes::INTERNAL, "the submission failed")),
    };
    let deadline = tokio::time::Instant::now() + cx.limits.submit_wait;
    let mut out = Vec::with_capacity(n * 48);
    let mut admitted = Vec::with_capacity(n);
    for (i, p) in pending.into_iter().enumerate() {
        let outcome = match p {
            Ok(rx) => tokio::time::timeout_at(deadline, rx.recv_async())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_else(|| {
                    Err(ApiError::new(
                        codes::UNAVAILABLE,
                        "node did not answer in time",
                    ))
                }),
            Err(e) => Err(e),
        };
        if let Ok(h) = &outcome {
            admitted.push(*h);
        }
        ack_frame(first + i as u64, &outcome, &mut out);
    }
    if !admitted.is_empty() {
        cx.node.submitted(&admitted, Instant::now());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_kind_and_fields() {
        let mut out = Vec::new();
        let h = Digest([7; 32]);
        ack_frame(5, &Ok(h), &mut out);
        assert_eq!(&out[..4], &(1u32 + 8 + 1 + 32).to_le_bytes());
        assert_eq!(out[4], ACK);
        assert_eq!(&out[5..13], &5u64.to_le_bytes());
        assert_eq!(out[13], 0);
        assert_eq!(&out[14..46], &[7; 32]);
        out.clear();
        ack_frame(
            6,
            &Err(ApiError::new(codes::SEQUENCE_USED, "used")),
            &mut out,
        );
        assert_eq!(out[13], 1);
        assert_eq!(&out[14..22], &codes::SEQUENCE_USED.to_le_bytes());
        assert_eq!(&out[22..], b"used");
        let b = block_frame(9, &Digest([1; 32]), &Digest([2; 32]), [h, h].iter());
        assert_eq!(b.len(), 4 + 1 + 8 + 64 + 4 + 64);
        assert_eq!(b[4], BLOCK);
        assert_eq!(&b[77..81], &2u32.to_le_bytes());
    }
}
