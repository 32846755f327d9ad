//! WebSocket sessions: JSON-RPC calls plus `plume_subscribe`.
//!
//! Notifications reach a connection through its [`Sink`]: a bounded queue
//! of pre-encoded messages and a count of the bytes queued. The notifier
//! (`roles::notify`) offers each message; a connection whose queue would
//! exceed [`Limits::ws_queue_bytes_max`] (or its message count) is cut: its
//! subscriptions end and the session closes the socket with code 1008 and
//! the reason, so a client that stops reading costs a bounded amount of
//! memory and learns why it was dropped. Every write has a deadline
//! ([`Limits::ws_write_timeout`]).

use super::conn::{Ctx, Guard, WsSlot};
use super::{codes, error_response, parse_topic, ApiError, Limits};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Most notification messages queued for one connection.
pub const WS_QUEUE_NOTES_MAX: usize = 4096;

/// What a connection's subscriptions share: the bytes queued, and why the
/// connection was cut (once it is).
#[derive(Debug, Default)]
pub struct SinkState {
    queued: AtomicUsize,
    limit: usize,
    cut: Mutex<Option<String>>,
    wake: tokio::sync::Notify,
}

impl SinkState {
    /// A state allowing `limit` queued bytes.
    pub fn new(limit: usize) -> SinkState {
        SinkState {
            limit,
            ..SinkState::default()
        }
    }

    /// Cut the connection for `reason` (the first reason stands).
    pub fn cut(&self, reason: impl Into<String>) {
        let mut c = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_none() {
            *c = Some(reason.into());
        }
        drop(c);
        self.wake.notify_one();
    }

    /// Why the connection was cut, if it was.
    pub fn cut_reason(&self) -> Option<String> {
        self.cut.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Bytes queued now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The connection took `n` queued bytes off the queue.
    pub(super) fn taken(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// Wait until the connection is cut.
    pub(super) async fn cut_notified(&self) {
        self.wake.notified().await;
    }
}

/// One queued notification: JSON text (a WebSocket subscription) or a
/// binary frame (a `/bin` connection's finality stream).
#[derive(Clone, Debug)]
pub enum Out {
    /// A JSON text message.
    Text(Arc<str>),
    /// An encoded binary frame.
    Bin(hyper::body::Bytes),
}

impl Out {
    /// Bytes it holds.
    pub fn len(&self) -> usize {
        match self {
            Out::Text(t) => t.len(),
            Out::Bin(b) => b.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Arc<str>> for Out {
    fn from(t: Arc<str>) -> Out {
        Out::Text(t)
    }
}

impl From<&str> for Out {
    fn from(t: &str) -> Out {
        Out::Text(t.into())
    }
}

/// Where one subscription's notifications go.
#[derive(Clone, Debug)]
pub struct Sink {
    /// The subscription id the client was given.
    pub id: u64,
    tx: flume::Sender<Out>,
    /// Shared by the connection's subscriptions.
    pub state: Arc<SinkState>,
}

/// What [`Sink::offer`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Queued.
    Queued,
    /// The connection was too far behind: it is cut now.
    Cut,
    /// The connection is gone or was cut before.
    Gone,
}

impl Sink {
    /// A sink of subscription `id` into `tx`.
    pub fn new(id: u64, tx: flume::Sender<Out>, state: Arc<SinkState>) -> Sink {
        Sink { id, tx, state }
    }

    /// Whether nothing more can be delivered (cut, or the connection gone).
    pub fn is_gone(&self) -> bool {
        self.tx.is_disconnected() || self.state.cut_reason().is_some()
    }

    /// Queue `msg`, or cut the connection if it is too far behind.
    pub fn offer(&self, msg: impl Into<Out>) -> Offer {
        let msg = msg.into();
        if self.is_gone() {
            return Offer::Gone;
        }
        let len = msg.len();
        let queued = self.state.queued.fetch_add(len, Ordering::Relaxed) + len;
        if queued > self.state.limit {
            self.state.queued.fetch_sub(len, Ordering::Relaxed);
            self.state.cut(format!(
                "subscriber too slow: more than {} bytes of notifications queued",
                self.state.limit
            ));
            return Offer::Cut;
        }
        match self.tx.try_send(msg) {
            Ok(()) => Offer::Queued,
            Err(flume::TrySendError::Full(_)) => {
                self.state.queued.fetch_sub(len, Ordering::Relaxed);
                self.state.cut(format!(
                    "subscriber too slow: more than {WS_QUEUE_NOTES_MAX} notifications queued"
                ));
                Offer::Cut
            }
            Err(flume::TrySendError::Disconnected(_)) => {
                self.state.queued.fetch_sub(len, Ordering::Relaxed);
                Offer::Gone
            }
        }
    }
}

/// The `plume_subscription` message of subscription `id` carrying
/// `result` (already JSON).
pub fn notification(id: u64, result: &str) -> Arc<str> {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"plume_subscription\",\"params\":{{\"subscription\":{id},\"result\":{result}}}}}"
    )
    .into()
}

async fn send(
    ws: &mut WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    msg: Message,
    limits: &Limits,
) -> bool {
    matches!(
        tokio::time::timeout(limits.ws_write_timeout, ws.send(msg)).await,
        Ok(Ok(()))
    )
}

/// Run one upgraded connection until it closes, is cut, or idles.
pub(super) async fn session(
    upgraded: hyper::upgrade::Upgraded,
    cx: Arc<Ctx>,
    client: Arc<Guard>,
    _ws_slot: WsSlot,
) {
    let limits = cx.limits.clone();
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.ws_message_bytes_max))
        .max_frame_size(Some(limits.ws_message_bytes_max));
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let (tx, rx) = flume::bounded::<Out>(WS_QUEUE_NOTES_MAX);
    let state = Arc::new(SinkState::new(limits.ws_queue_bytes_max));
    let mut subs = 0usize;
    let mut next_sub = 1u64;
    // Pings every third of `ws_idle`; a client from which nothing (not even
    // a pong) arrived for `ws_idle` is closed, subscribed or not, so a
    // vanished client never keeps its slot.
    let ping_every = (limits.ws_idle / 3).max(std::time::Duration::from_millis(10));
    let mut last_heard = tokio::time::Instant::now();
    let mut next_ping = last_heard + ping_every;
    loop {
        tokio::select! {
            () = state.wake.notified() => {
                let reason = state.cut_reason().unwrap_or_else(|| "closed".into());
                cx.node.shed("ws_subscriber_too_slow");
                let frame = CloseFrame { code: CloseCode::Policy, reason: reason.into() };
                let _ = tokio::time::timeout(limits.ws_write_timeout, ws.close(Some(frame))).await;
                return;
            }
            note = rx.recv_async() => {
                let Ok(note) = note else { return };
                state.queued.fetch_sub(note.len(), Ordering::Relaxed);
                let msg = match note {
                    Out::Text(t) => Message::text(t.to_string()),
                    Out::Bin(b) => Message::binary(b),
                };
                if !send(&mut ws, msg, &limits).await {
                    cx.node.shed("ws_write_timeout");
                    state.cut("write failed or timed out");
                    return;
                }
            }
            () = tokio::time::sleep_until(next_ping) => {
                if last_heard.elapsed() >= limits.ws_idle {
                    cx.node.shed("ws_idle");
                    let frame = CloseFrame {
                        code: CloseCode::Policy,
                        reason: format!("nothing heard for {:?}", limits.ws_idle).into(),
                    };
                    let _ = tokio::time::timeout(limits.ws_write_timeout, ws.close(Some(frame))).await;
                    return;
                }
                next_ping = tokio::time::Instant::now() + ping_every;
                if !send(&mut ws, Message::Ping(Vec::new().into()), &limits).await {
                    cx.node.shed("ws_write_timeout");
                    return;
                }
            }
            msg = ws.next() => {
                last_heard = tokio::time::Instant::now();
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).to_string(),
                    Some(Ok(Message::Close(_))) | None => return,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        // Oversized messages end here too (the limit is
                        // in the config): say why before closing.
                        cx.node.shed("ws_bad_message");
                        let frame = CloseFrame { code: CloseCode::Size, reason: e.to_string().into() };
                        let _ = tokio::time::timeout(limits.ws_write_timeout, ws.close(Some(frame))).await;
                        return;
                    }
                };
                let reply = match subscribe_call(&text) {
                    Some((id, params)) => {
                        match parse_topic(&params) {
                            Err(e) => error_response(id, &e).to_string(),
                            Ok(_) if subs >= limits.ws_subscriptions_max => error_response(
                                id,
                                &ApiError::new(
                                    codes::INVALID_PARAMS,
                                    format!("at most {} subscriptions", limits.ws_subscriptions_max),
                                ),
                            ).to_string(),
                            Ok(topic) => {
                                let sid = next_sub;
                                match cx.node.subscribe(topic, Sink::new(sid, tx.clone(), state.clone())) {
                                    Ok(()) => {
                                        next_sub += 1;
                                        subs += 1;
                                        json!({"jsonrpc": "2.0", "id": id, "result": sid}).to_string()
                                    }
                                    Err(e) => error_response(id, &e).to_string(),
                                }
                            }
                        }
                    }
                    None => cx.rpc(text.into_bytes(), &client).await.1,
                };
                if !send(&mut ws, Message::text(reply), &limits).await {
                    cx.node.shed("ws_write_timeout");
                    return;
                }
            }
        }
    }
}

/// `Some((id, params))` when `text` is a `plume_subscribe` call.
fn subscribe_call(text: &str) -> Option<(Value, Value)> {
    // Cheap test first: most messages are other calls.
    if !text.contains("plume_subscribe") {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    (v.get("method").and_then(Value::as_str) == Some("plume_subscribe")).then(|| {
        (
            v.get("id").cloned().unwrap_or(Value::Null),
            v.get("params").cloned().unwrap_or(Value::Null),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_over_its_byte_limit_is_cut_with_a_reason() {
        let (tx, rx) = flume::bounded(WS_QUEUE_NOTES_MAX);
        let state = Arc::new(SinkState::new(100));
        let sink = Sink::new(1, tx, state.clone());
        let note: Out = Out::Text("x".repeat(40).into());
        assert_eq!(sink.offer(note.clone()), Offer::Queued);
        assert_eq!(sink.offer(note.clone()), Offer::Queued);
        assert_eq!(state.queued(), 80);
        assert_eq!(sink.offer(note.clone()), Offer::Cut, "120 > 100 bytes");
        assert!(state.cut_reason().unwrap().contains("too slow"));
        assert_eq!(sink.offer(note), Offer::Gone, "cut stays cut");
        assert_eq!(rx.len(), 2, "nothing past the limit was queued");
    }

    #[test]
    fn a_sink_whose_connection_is_gone_takes_nothing() {
        let (tx, rx) = flume::bounded(4);
        let sink = Sink::new(1, tx, Arc::new(SinkState::new(1000)));
        drop(rx);
        assert_eq!(sink.offer("{}"), Offer::Gone);
        assert!(sink.is_gone());
    }
}
