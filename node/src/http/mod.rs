//! The client API: JSON-RPC 2.0 over HTTP (`POST /`) and WebSocket
//! (`GET /ws`), OpenMetrics/Prometheus metrics (`GET /metrics`) and health
//! (`GET /health`).
//!
//! It runs on its own small tokio runtime ([`server`], hyper's HTTP/1.1
//! server) on one thread off the pinned hot cores, plus a bounded pool of
//! blocking threads for the calls that read the store. The server knows
//! nothing about consensus; it calls a [`NodeApi`].
//!
//! Every resource a client can make the node hold is bounded ([`Limits`],
//! the README's limits table): connections in total and per client address,
//! the time to send a request head and a body, body and head bytes, calls
//! per batch and per second per client, response bytes per request, store
//! readers, WebSocket message bytes, subscriptions, and the bytes queued
//! for a subscriber (one that falls behind is closed with a reason, never
//! buffered without bound). What is refused is counted by reason
//! ([`NodeApi::shed`], `plume_shed_total{reason}`).
//!
//! Error codes (JSON-RPC `error.code`) are listed in [`codes`] and in the
//! README's API section.

mod auth;
pub mod bin;
mod conn;
mod dashboard;
mod deadline;
pub mod server;
pub mod ws;

pub use server::ApiServer;
pub use ws::{Sink, SinkState};

use plume_crypto::Digest;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The limits of the API server. [`Limits::default`] holds the defaults
/// the README's limits table lists.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most open connections (HTTP and WebSocket).
    pub connections_max: usize,
    /// Most open connections from one client address.
    pub connections_per_client: usize,
    /// Time a client has to send a request head (also closes idle
    /// keep-alive connections).
    pub head_timeout: Duration,
    /// Time a client has to send a request body.
    pub body_timeout: Duration,
    /// Time a response write may wait for the client to take a byte
    /// before the connection is closed.
    pub write_timeout: Duration,
    /// Largest request head (request line and headers).
    pub head_bytes_max: usize,
    /// Largest request body.
    pub request_bytes_max: usize,
    /// Most calls in one JSON-RPC batch.
    pub batch_calls_max: usize,
    /// Most bytes of results in one response (a batch is cut there).
    pub response_bytes_max: usize,
    /// Calls per second one client address may make (sustained).
    pub calls_per_s: f64,
    /// Calls one client address may make at once.
    pub calls_burst: f64,
    /// Store readers the API may hold at once (under LMDB's reader slots,
    /// so execution always finds one).
    pub readers_max: usize,
    /// How long a call waits for a reader before "node busy".
    pub reader_wait: Duration,
    /// How long a submission waits for its admission outcome.
    pub submit_wait: Duration,
    /// Most WebSocket connections.
    pub ws_connections_max: usize,
    /// Most subscriptions per WebSocket connection.
    pub ws_subscriptions_max: usize,
    /// Largest WebSocket message from a client.
    pub ws_message_bytes_max: usize,
    /// Most notification bytes queued for one WebSocket connection: a
    /// subscriber further behind is closed (code 1008, with the reason).
    pub ws_queue_bytes_max: usize,
    /// Time one WebSocket write may take before the connection is closed.
    pub ws_write_timeout: Duration,
    /// A WebSocket without subscriptions that sends nothing for this long
    /// is closed.
    pub ws_idle: Duration,
    /// The access token every request but `/health` must carry (None:
    /// open, the default on loopback).
    pub token: Option<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 1024,
            connections_per_client: 256,
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            head_bytes_max: 16 * 1024,
            request_bytes_max: 8 * 1024 * 1024,
            batch_calls_max: 1000,
            response_bytes_max: 16 * 1024 * 1024,
            calls_per_s: 50_000.0,
            calls_burst: 100_000.0,
            readers_max: 64,
            reader_wait: Duration::from_secs(5),
            submit_wait: Duration::from_secs(30),
            ws_connections_max: 256,
            ws_subscriptions_max: 16,
            ws_message_bytes_max: 1024 * 1024,
            ws_queue_bytes_max: 4 * 1024 * 1024,
            ws_write_timeout: Duration::from_secs(10),
            ws_idle: Duration::from_secs(60),
            token: None,
        }
    }
}

/// JSON-RPC error codes.
pub mod codes {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal failure.
    pub const INTERNAL: i64 = -32603;
    /// Transaction bytes do not decode (or break a format limit).
    pub const MALFORMED_TX: i64 = 1001;
    /// A signature does not verify.
    pub const BAD_SIGNATURE: i64 = 1002;
    /// The transaction names another chain.
    pub const WRONG_CHAIN: i64 = 1003;
    /// The sequence was already used (replay).
    pub const SEQUENCE_USED: i64 = 1004;
    /// The sequence is too far ahead of the account's.
    pub const SEQUENCE_TOO_FAR: i64 = 1005;
    /// Past its expiry height.
    pub const EXPIRED: i64 = 1006;
    /// Max fee per gas below the current base fee, or balance cannot cover it.
    pub const FEE_TOO_LOW: i64 = 1007;
    /// Larger than the transaction size limit.
    pub const OVERSIZED: i64 = 1008;
    /// The mempool is full.
    pub const MEMPOOL_FULL: i64 = 1009;
    /// Not found.
    pub const NOT_FOUND: i64 = 1010;
    /// Already known.
    pub const DUPLICATE: i64 = 1011;
    /// The node is shutting down or overloaded.
    pub const UNAVAILABLE: i64 = 1012;
    /// This client made more calls per second than it may (HTTP 429).
    pub const RATE_LIMITED: i64 = 1013;
    /// The response would exceed the response byte budget (split the batch).
    pub const RESPONSE_TOO_LARGE: i64 = 1014;
    /// The sender already has the most transactions the mempool holds per
    /// account waiting (wait for some to be final).
    pub const ACCOUNT_LIMIT: i64 = 1015;
    /// The node is an observer: it accepts no transaction.
    pub const READ_ONLY: i64 = 1016;
    /// The node requires an access token and the request carried none, or
    /// another (HTTP 401).
    pub const UNAUTHORIZED: i64 = 1017;
}

/// An error returned to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// JSON-RPC code.
    pub code: i64,
    /// Message.
    pub message: String,
}

impl ApiError {
    /// New error.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
    fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

/// What a WebSocket client can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Every finalized block (header summary).
    Blocks,
    /// Receipts of transactions touching this account (hex address).
    Receipts(String),
    /// Every committed block as a binary `/bin` frame (its transaction
    /// hashes; [`bin::block_frame`]).
    BlocksBinary,
    /// Alerts an observer raises as it indexes each block.
    Alerts,
}

/// A submission's admission outcome, once it is known.
pub type Pending = flume::Receiver<Result<Digest, ApiError>>;

/// The node behind the API. Every method but [`NodeApi::health`],
/// [`NodeApi::metrics_text`], [`NodeApi::submitted`] and [`NodeApi::shed`]
/// may read the store and runs on the blocking pool, holding one of
/// [`Limits::readers_max`] reader permits.
pub trait NodeApi: Send + Sync + 'static {
    /// Handle one JSON-RPC call (not submissions, not subscriptions).
    fn call(&self, method: &str, params: &Value) -> Result<Value, ApiError>;
    /// Check and queue `plume_submitTransaction` calls (their params), all
    /// of one request together (so their signatures are verified as one
    /// batch); one outcome per call, in order. The default refuses them.
    fn submit(&self, params: &[Value]) -> Vec<Result<Pending, ApiError>> {
        params
            .iter()
            .map(|_| {
                Err(ApiError::new(
                    codes::METHOD_NOT_FOUND,
                    "this node takes no submissions",
                ))
            })
            .collect()
    }
    /// Check and queue raw transactions (the binary endpoint), all
    /// together; one outcome per transaction, in order. The default
    /// refuses them.
    fn submit_raw(&self, txs: Vec<Vec<u8>>) -> Vec<Result<Pending, ApiError>> {
        txs.iter()
            .map(|_| {
                Err(ApiError::new(
                    codes::METHOD_NOT_FOUND,
                    "this node takes no submissions",
                ))
            })
            .collect()
    }
    /// These submissions were admitted at `at` (finality latency).
    fn submitted(&self, _hashes: &[Digest], _at: Instant) {}
    /// Metrics in the OpenMetrics text format.
    fn metrics_text(&self) -> String;
    /// Whether the node is healthy (store open, consensus running).
    fn health(&self) -> (bool, Value);
    /// Deliver notifications for `topic` to `sink` until it is cut or its
    /// connection closes.
    fn subscribe(&self, topic: Topic, sink: Sink) -> Result<(), ApiError>;
    /// Count one item refused or dropped for `reason`.
    fn shed(&self, _reason: &'static str) {}
}

fn error_response(id: Value, e: &ApiError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()})
}

/// One call's place in a response: its text, or the admission outcome it
/// waits for.
enum Slot {
    Done(String),
    Wait { id: Value, rx: Pending },
}

/// A request parsed and run up to the submissions' outcomes.
pub struct Prepared {
    /// HTTP status of the whole response.
    status: u16,
    /// A batch (answered as an array) or a single call.
    batch: bool,
    slots: Vec<Slot>,
}

/// Parse `body` and run its calls on this (blocking) thread, submissions
/// up to their queueing. `allow(n)` takes `n` calls from the client's
/// rate budget.
pub fn prepare(
    body: &[u8],
    node: &dyn NodeApi,
    limits: &Limits,
    allow: &mut dyn FnMut(usize) -> bool,
) -> Prepared {
    let single = |status: u16, v: Value| Prepared {
        status,
        batch: false,
        slots: vec![Slot::Done(v.to_string())],
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return single(
                200,
                error_response(
                    Value::Null,
                    &ApiError::new(codes::PARSE_ERROR, format!("invalid JSON: {e}")),
                ),
            )
        }
    };
    let (batch, calls) = match v {
        Value::Array(calls) => (true, calls),
        other => (false, vec![other]),
    };
    if batch && (calls.is_empty() || calls.len() > limits.batch_calls_max) {
        node.shed("api_batch_too_large");
        return single(
            200,
            error_response(
                Value::Null,
                &ApiError::new(
                    codes::INVALID_REQUEST,
                    format!("batch must hold 1 to {} calls", limits.batch_calls_max),
                ),
            ),
        );
    }
    if !allow(calls.len()) {
        node.shed("api_rate_limited");
        return single(
            429,
            error_response(
                Value::Null,
                &ApiError::new(
                    codes::RATE_LIMITED,
                    format!(
                        "more than {} calls per second from this client; slow down",
                        limits.calls_per_s
                    ),
                ),
            ),
        );
    }
    let is_submit = |c: &Value| {
        c.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
            && c.get("method").and_then(Value::as_str) == Some("plume_submitTransaction")
    };
    // Submissions of one request are handed over together.
    let submits: Vec<Value> = calls
        .iter()
        .filter(|c| is_submit(c))
        .map(|c| c.get("params").cloned().unwrap_or(Value::Null))
        .collect();
    let mut outcomes = if submits.is_empty() {
        Vec::new()
    } else {
        node.submit(&submits)
    }
    .into_iter();
    let mut bytes = 0usize;
    let mut over = false;
    let slots = calls
        .iter()
        .map(|c| {
            let id = c.get("id").cloned().unwrap_or(Value::Null);
            if is_submit(c) {
                return match outcomes.next() {
                    Some(Ok(rx)) => Slot::Wait { id, rx },
                    Some(Err(e)) => Slot::Done(error_response(id, &e).to_string()),
                    None => Slot::Done(
                        error_response(id, &ApiError::new(codes::INTERNAL, "missing result"))
                            .to_string(),
                    ),
                };
            }
            if over {
                return Slot::Done(response_too_large(id, limits).to_string());
            }
            let text = handle_call(c, node).to_string();
            bytes += text.len();
            if bytes > limits.response_bytes_max {
                over = true;
                node.shed("api_response_too_large");
                return Slot::Done(response_too_large(id, limits).to_string());
            }
            Slot::Done(text)
        })
        .collect();
    Prepared {
        status: 200,
        batch,
        slots,
    }
}

fn response_too_large(id: Value, limits: &Limits) -> Value {
    error_response(
        id,
        &ApiError::new(
            codes::RESPONSE_TOO_LARGE,
            format!(
                "the response would exceed {} bytes; split the batch",
                limits.response_bytes_max
            ),
        ),
    )
}

fn submit_reply(id: Value, outcome: Option<Result<Digest, ApiError>>) -> (String, Option<Digest>) {
    match outcome {
        Some(Ok(h)) => (
            json!({"jsonrpc": "2.0", "id": id, "result": {"hash": h.to_hex()}}).to_string(),
            Some(h),
        ),
        Some(Err(e)) => (error_response(id, &e).to_string(), None),
        None => (
            error_response(
                id,
                &ApiError::new(codes::UNAVAILABLE, "node did not answer in time"),
            )
            .to_string(),
            None,
        ),
    }
}

impl Prepared {
    /// HTTP status of the response.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Wait (asynchronously) for the submissions' outcomes, until
    /// `deadline`; the response text and the admitted hashes.
    pub async fn finish(self, deadline: tokio::time::Instant) -> (String, Vec<Digest>) {
        let mut texts = Vec::with_capacity(self.slots.len());
        let mut admitted = Vec::new();
        for slot in self.slots {
            match slot {
                Slot::Done(t) => texts.push(t),
                Slot::Wait { id, rx } => {
                    let outcome = tokio::time::timeout_at(deadline, rx.recv_async())
                        .await
                        .ok()
                        .and_then(Result::ok);
                    let (t, h) = submit_reply(id, outcome);
                    texts.push(t);
                    admitted.extend(h);
                }
            }
        }
        (join(self.batch, texts), admitted)
    }

    /// [`Prepared::finish`] on a plain thread.
    pub fn finish_blocking(self, deadline: Instant) -> (String, Vec<Digest>) {
        let mut texts = Vec::with_capacity(self.slots.len());
        let mut admitted = Vec::new();
        for slot in self.slots {
            match slot {
                Slot::Done(t) => texts.push(t),
                Slot::Wait { id, rx } => {
                    let (t, h) = submit_reply(id, rx.recv_deadline(deadline).ok());
                    texts.push(t);
                    admitted.extend(h);
                }
            }
        }
        (join(self.batch, texts), admitted)
    }
}

fn join(batch: bool, texts: Vec<String>) -> String {
    if batch {
        format!("[{}]", texts.join(","))
    } else {
        texts.into_iter().next().unwrap_or_default()
    }
}

/// Handle a JSON-RPC request body (single call or batch) on this thread,
/// without a rate budget (tests and tools).
pub fn handle_rpc_bytes(body: &[u8], node: &dyn NodeApi) -> Value {
    let limits = Limits::default();
    let p = prepare(body, node, &limits, &mut |_| true);
    let (text, _) = p.finish_blocking(Instant::now() + limits.submit_wait);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn handle_call(call: &Value, node: &dyn NodeApi) -> Value {
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    if call.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return error_response(
            id,
            &ApiError::new(codes::INVALID_REQUEST, "jsonrpc must be \"2.0\""),
        );
    }
    let Some(method) = call.get("method").and_then(Value::as_str) else {
        return error_response(id, &ApiError::new(codes::INVALID_REQUEST, "method missing"));
    };
    let params = call.get("params").cloned().unwrap_or(Value::Null);
    match node.call(method, &params) {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => error_response(id, &e),
    }
}

pub(crate) fn parse_topic(params: &Value) -> Result<Topic, ApiError> {
    let arr = params.as_array().cloned().unwrap_or_default();
    match arr.first().and_then(Value::as_str) {
        Some("blocks") => Ok(Topic::Blocks),
        Some("alerts") => Ok(Topic::Alerts),
        Some("receipts") => {
            let addr = arr.get(1).and_then(Value::as_str).ok_or_else(|| {
                ApiError::new(codes::INVALID_PARAMS, "receipts needs an account address")
            })?;
            plume_crypto::ed25519::Address::from_hex(addr)
                .map_err(|e| ApiError::new(codes::INVALID_PARAMS, format!("address: {e}")))?;
            Ok(Topic::Receipts(
                addr.trim_start_matches("0x").to_lowercase(),
            ))
        }
        _ => Err(ApiError::new(
            codes::INVALID_PARAMS,
            "params must be [\"blocks\"], [\"alerts\"] or [\"receipts\", ADDRESS]",
        )),
    }
}

#[cfg(test)]
mod tests;
