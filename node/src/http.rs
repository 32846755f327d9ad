//! The client API: JSON-RPC 2.0 over HTTP (`POST /`) and WebSocket
//! (`GET /ws`), OpenMetrics/Prometheus metrics (`GET /metrics`) and health
//! (`GET /health`).
//!
//! It runs on its own threads, off the pinned hot cores: a small fixed pool
//! of HTTP workers and at most [`WS_CONNECTIONS_MAX`] WebSocket threads. The
//! server knows nothing about consensus; it calls a [`NodeApi`].
//!
//! Error codes (JSON-RPC `error.code`) are listed in [`codes`] and in the
//! README's API section.

use serde_json::{json, Value};
use std::io::Read as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest request body accepted.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most calls in one JSON-RPC batch.
pub const BATCH_CALLS_MAX: usize = 10_000;
/// Most concurrent WebSocket connections.
pub const WS_CONNECTIONS_MAX: usize = 64;
/// Most subscriptions per WebSocket connection.
pub const WS_SUBSCRIPTIONS_MAX: usize = 16;

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
}

/// The node behind the API.
pub trait NodeApi: Send + Sync + 'static {
    /// Handle one JSON-RPC call (not subscriptions).
    fn call(&self, method: &str, params: &Value) -> Result<Value, ApiError>;
    /// Handle many `plume_submitTransaction` calls of one batch together
    /// (so their signatures are verified as one batch). The default handles
    /// them one by one.
    fn submit_many(&self, params: &[Value]) -> Vec<Result<Value, ApiError>> {
        params
            .iter()
            .map(|p| self.call("plume_submitTransaction", p))
            .collect()
    }
    /// Metrics in the OpenMetrics text format.
    fn metrics_text(&self) -> String;
    /// Whether the node is healthy (store open, consensus running).
    fn health(&self) -> (bool, Value);
    /// A bounded stream of notifications for `topic`. When the client is too
    /// slow the sender drops notifications (counted) rather than block.
    fn subscribe(&self, topic: Topic) -> Result<flume::Receiver<Value>, ApiError>;
}

/// Most concurrent HTTP connections (each has a thread).
pub const HTTP_CONNECTIONS_MAX: usize = 256;
/// Idle time after which a keep-alive connection is closed.
pub const HTTP_IDLE: Duration = Duration::from_secs(30);
/// Largest request head (request line + headers).
pub const HEAD_BYTES_MAX: usize = 16 * 1024;

/// Handle of a running server.
pub struct ApiServer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
    /// The bound address.
    pub addr: std::net::SocketAddr,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ApiServer {
    /// Bind and start accepting; one thread per connection, at most
    /// [`HTTP_CONNECTIONS_MAX`] (+ [`WS_CONNECTIONS_MAX`] WebSockets).
    pub fn start(addr: &str, node: Arc<dyn NodeApi>) -> anyhow::Result<ApiServer> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("api: cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let ws_live = Arc::new(AtomicUsize::new(0));
        let stop2 = stop.clone();
        let acceptor = std::thread::Builder::new()
            .name("api-accept".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if live.fetch_add(1, Ordering::SeqCst) >= HTTP_CONNECTIONS_MAX {
                                live.fetch_sub(1, Ordering::SeqCst);
                                drop(stream);
                                continue;
                            }
                            let node = node.clone();
                            let live2 = live.clone();
                            let ws_live = ws_live.clone();
                            let stop3 = stop2.clone();
                            let spawned = std::thread::Builder::new()
                                .name("api-conn".into())
                                .spawn(move || {
                                    let _ =
                                        serve_connection(stream, node.as_ref(), &ws_live, &stop3);
                                    live2.fetch_sub(1, Ordering::SeqCst);
                                });
                            if spawned.is_err() {
                                live.fetch_sub(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(ApiServer {
            stop,
            acceptor: Some(acceptor),
            addr: local,
        })
    }

    /// Stop accepting (open connections end at their next idle timeout).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one request; `Ok(None)` on a clean close.
fn read_request(
    stream: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<HttpRequest>> {
    use std::io::{Error, ErrorKind};
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req
                    .path
                    .unwrap_or("")
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).to_string(),
                        )
                    })
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| {
                        v.trim()
                            .parse()
                            .map_err(|_| Error::new(ErrorKind::InvalidData, "bad content-length"))
                    })
                    .transpose()?
                    .unwrap_or(0);
                if len > REQUEST_BYTES_MAX {
                    return Err(Error::new(ErrorKind::InvalidData, "body too large"));
                }
                while buf.len() < head_len + len {
                    let mut chunk = [0u8; 64 * 1024];
                    let n = stream.read(&mut chunk)?;
                    if n == 0 {
                        return Err(Error::new(ErrorKind::UnexpectedEof, "truncated body"));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[head_len..head_len + len].to_vec();
                buf.drain(..head_len + len);
                return Ok(Some(HttpRequest {
                    method,
                    path,
                    headers,
                    body,
                }));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > HEAD_BYTES_MAX {
                    return Err(Error::new(ErrorKind::InvalidData, "request head too large"));
                }
                let mut chunk = [0u8; 16 * 1024];
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(Error::new(ErrorKind::UnexpectedEof, "truncated head"))
                    };
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(_) => return Err(Error::new(ErrorKind::InvalidData, "malformed HTTP request")),
        }
    }
}

fn write_response(
    stream: &mut std::net::TcpStream,
    status: u16,
    ctype: &str,
    body: &[u8],
) -> std::io::Result<()> {
    use std::io::Write;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

fn serve_connection(
    mut stream: std::net::TcpStream,
    node: &dyn NodeApi,
    ws_live: &Arc<AtomicUsize>,
    stop: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(HTTP_IDLE))?;
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let req = match read_request(&mut stream, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => {
                let body = error_response(
                    Value::Null,
                    &ApiError::new(codes::INVALID_REQUEST, e.to_string()),
                )
                .to_string();
                let _ = write_response(&mut stream, 400, "application/json", body.as_bytes());
                return Err(e);
            }
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/metrics") => write_response(
                &mut stream,
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                node.metrics_text().as_bytes(),
            )?,
            ("GET", "/health") => {
                let (ok, detail) = node.health();
                write_response(
                    &mut stream,
                    if ok { 200 } else { 503 },
                    "application/json",
                    detail.to_string().as_bytes(),
                )?
            }
            ("GET", "/ws") => return upgrade_ws(stream, &req, node, ws_live),
            ("POST", "/") | ("POST", "/rpc") => {
                let reply = handle_rpc_bytes(&req.body, node);
                write_response(
                    &mut stream,
                    200,
                    "application/json",
                    reply.to_string().as_bytes(),
                )?
            }
            _ => write_response(&mut stream, 404, "text/plain", b"not found\n")?,
        }
    }
    Ok(())
}

fn error_response(id: Value, e: &ApiError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()})
}

/// Handle a JSON-RPC request body (single call or batch).
pub fn handle_rpc_bytes(body: &[u8], node: &dyn NodeApi) -> Value {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                Value::Null,
                &ApiError::new(codes::PARSE_ERROR, format!("invalid JSON: {e}")),
            )
        }
    };
    match v {
        Value::Array(calls) => {
            if calls.is_empty() || calls.len() > BATCH_CALLS_MAX {
                return error_response(
                    Value::Null,
                    &ApiError::new(
                        codes::INVALID_REQUEST,
                        format!("batch must hold 1 to {BATCH_CALLS_MAX} calls"),
                    ),
                );
            }
            // Submissions in a batch are handed over together.
            let is_submit = |c: &Value| {
                c.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
                    && c.get("method").and_then(Value::as_str) == Some("plume_submitTransaction")
            };
            let submits: Vec<Value> = calls
                .iter()
                .filter(|c| is_submit(c))
                .map(|c| c.get("params").cloned().unwrap_or(Value::Null))
                .collect();
            let mut results = node.submit_many(&submits).into_iter();
            Value::Array(
                calls
                    .iter()
                    .map(|c| {
                        if is_submit(c) {
                            let id = c.get("id").cloned().unwrap_or(Value::Null);
                            match results.next() {
                                Some(Ok(v)) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
                                Some(Err(e)) => error_response(id, &e),
                                None => error_response(
                                    id,
                                    &ApiError::new(codes::INTERNAL, "missing result"),
                                ),
                            }
                        } else {
                            handle_call(c, node)
                        }
                    })
                    .collect(),
            )
        }
        other => handle_call(&other, node),
    }
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

fn upgrade_ws(
    mut stream: std::net::TcpStream,
    req: &HttpRequest,
    node: &dyn NodeApi,
    ws_live: &Arc<AtomicUsize>,
) -> std::io::Result<()> {
    use std::io::Write;
    let Some(key) = req.header("Sec-WebSocket-Key") else {
        return write_response(
            &mut stream,
            400,
            "text/plain",
            b"expected a WebSocket upgrade\n",
        );
    };
    if ws_live.fetch_add(1, Ordering::SeqCst) >= WS_CONNECTIONS_MAX {
        ws_live.fetch_sub(1, Ordering::SeqCst);
        return write_response(
            &mut stream,
            503,
            "text/plain",
            b"too many WebSocket connections\n",
        );
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    let r = stream.write_all(head.as_bytes());
    if r.is_ok() {
        // Short read timeout: notifications are flushed whenever a read
        // times out, so a subscriber needs to send nothing to receive them.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        ws_session(stream, node);
    }
    ws_live.fetch_sub(1, Ordering::SeqCst);
    r
}

/// One WebSocket connection: JSON-RPC calls plus `plume_subscribe`.
fn ws_session(stream: std::net::TcpStream, node: &dyn NodeApi) {
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
    let mut subs: Vec<(u64, flume::Receiver<Value>)> = Vec::new();
    let mut next_sub = 1u64;
    let mut idle = Duration::ZERO;
    loop {
        for (id, rx) in &subs {
            while let Ok(n) = rx.try_recv() {
                let msg = json!({"jsonrpc": "2.0", "method": "plume_subscription", "params": {"subscription": id, "result": n}});
                if ws
                    .send(tungstenite::Message::text(msg.to_string()))
                    .is_err()
                {
                    return;
                }
            }
        }
        let msg = match ws.read() {
            Ok(m) => {
                idle = Duration::ZERO;
                m
            }
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                idle += Duration::from_millis(20);
                if subs.is_empty() && idle > HTTP_IDLE {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        let text = match msg {
            tungstenite::Message::Text(t) => t.to_string(),
            tungstenite::Message::Binary(b) => String::from_utf8_lossy(&b).to_string(),
            tungstenite::Message::Close(_) => return,
            _ => continue,
        };
        let call: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                let r = error_response(
                    Value::Null,
                    &ApiError::new(codes::PARSE_ERROR, format!("invalid JSON: {e}")),
                );
                if ws.send(tungstenite::Message::text(r.to_string())).is_err() {
                    return;
                }
                continue;
            }
        };
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let reply = if call.get("method").and_then(Value::as_str) == Some("plume_subscribe") {
            match parse_topic(call.get("params").unwrap_or(&Value::Null)) {
                Err(e) => error_response(id, &e),
                Ok(_) if subs.len() >= WS_SUBSCRIPTIONS_MAX => error_response(
                    id,
                    &ApiError::new(
                        codes::INVALID_PARAMS,
                        format!("at most {WS_SUBSCRIPTIONS_MAX} subscriptions"),
                    ),
                ),
                Ok(topic) => match node.subscribe(topic) {
                    Ok(rx) => {
                        let sid = next_sub;
                        next_sub += 1;
                        subs.push((sid, rx));
                        json!({"jsonrpc": "2.0", "id": id, "result": sid})
                    }
                    Err(e) => error_response(id, &e),
                },
            }
        } else {
            handle_call(&call, node)
        };
        if ws
            .send(tungstenite::Message::text(reply.to_string()))
            .is_err()
        {
            return;
        }
    }
}

fn parse_topic(params: &Value) -> Result<Topic, ApiError> {
    let arr = params.as_array().cloned().unwrap_or_default();
    match arr.first().and_then(Value::as_str) {
        Some("blocks") => Ok(Topic::Blocks),
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
            "params must be [\"blocks\"] or [\"receipts\", ADDRESS]",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl NodeApi for Echo {
        fn call(&self, method: &str, params: &Value) -> Result<Value, ApiError> {
            match method {
                "echo" => Ok(params.clone()),
                _ => Err(ApiError::new(
                    codes::METHOD_NOT_FOUND,
                    format!("unknown method {method}"),
                )),
            }
        }
        fn metrics_text(&self) -> String {
            "plume_up 1\n".into()
        }
        fn health(&self) -> (bool, Value) {
            (true, json!({"ok": true}))
        }
        fn subscribe(&self, _t: Topic) -> Result<flume::Receiver<Value>, ApiError> {
            let (tx, rx) = flume::bounded(4);
            tx.send(json!({"height": 1})).unwrap();
            Ok(rx)
        }
    }

    #[test]
    fn rpc_shapes_and_errors() {
        let r = handle_rpc_bytes(
            br#"{"jsonrpc":"2.0","id":7,"method":"echo","params":[1]}"#,
            &Echo,
        );
        assert_eq!(r, json!({"jsonrpc":"2.0","id":7,"result":[1]}));
        let r = handle_rpc_bytes(b"{nope", &Echo);
        assert_eq!(r["error"]["code"], codes::PARSE_ERROR);
        let r = handle_rpc_bytes(br#"{"id":1,"method":"echo"}"#, &Echo);
        assert_eq!(r["error"]["code"], codes::INVALID_REQUEST);
        let r = handle_rpc_bytes(br#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#, &Echo);
        assert_eq!(r["error"]["code"], codes::METHOD_NOT_FOUND);
        let r = handle_rpc_bytes(br#"[{"jsonrpc":"2.0","id":1,"method":"echo","params":2},{"jsonrpc":"2.0","id":2,"method":"x"}]"#, &Echo);
        assert_eq!(r[0]["result"], 2);
        assert_eq!(r[1]["error"]["code"], codes::METHOD_NOT_FOUND);
        let r = handle_rpc_bytes(b"[]", &Echo);
        assert_eq!(r["error"]["code"], codes::INVALID_REQUEST);
    }

    #[test]
    fn http_endpoints_and_websocket_subscription() {
        let srv = ApiServer::start("127.0.0.1:0", Arc::new(Echo)).unwrap();
        let addr = srv.addr;
        let (status, body) = plume_client::http_get(&addr.to_string(), "/metrics").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("plume_up 1"));
        let (status, _) = plume_client::http_get(&addr.to_string(), "/health").unwrap();
        assert_eq!(status, 200);
        let v = plume_client::rpc(&addr.to_string(), "echo", json!({"a": 1})).unwrap();
        assert_eq!(v, json!({"a": 1}));
        let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws")).unwrap();
        ws.send(tungstenite::Message::text(
            r#"{"jsonrpc":"2.0","id":1,"method":"plume_subscribe","params":["blocks"]}"#,
        ))
        .unwrap();
        let mut got_sub_id = false;
        let mut got_note = false;
        for _ in 0..4 {
            let m: Value = serde_json::from_str(&ws.read().unwrap().to_string()).unwrap();
            if m["id"] == 1 {
                got_sub_id = m["result"] == 1;
            }
            if m["method"] == "plume_subscription" {
                got_note = m["params"]["result"]["height"] == 1;
            }
            if got_sub_id && got_note {
                break;
            }
        }
        assert!(got_sub_id && got_note);
        srv.stop();
    }
}
