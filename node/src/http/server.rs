//! The HTTP/1.1 server (hyper) on its own current-thread tokio runtime:
//! one thread accepts and drives every connection; calls that read the
//! store run on a blocking pool, at most [`Limits::readers_max`] at once.
//!
//! Connections are counted in total and per client address; a client over
//! either bound is refused at accept. A request head must arrive within
//! [`Limits::head_timeout`] (hyper's header timer, which also ends idle
//! keep-alive connections) and a body within [`Limits::body_timeout`], so
//! a slowloris connection holds a slot for seconds, not forever, and never
//! a thread. A response write that waits [`Limits::write_timeout`] for the
//! client to take a byte closes the connection (a client that asks for a
//! large answer and stops reading). `/health` and `/metrics` are answered on the runtime thread
//! itself, without a reader, so they answer while readers are all busy.

use super::conn::{Clients, Ctx, Guard, WsSlot};
use super::deadline::WriteDeadline;
use super::{codes, error_response, ApiError, Limits, NodeApi};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Connections the kernel queues for the API before it accepts them.
pub const ACCEPT_BACKLOG: i32 = 4096;

/// Handle of a running server.
pub struct ApiServer {
    stop: Arc<(AtomicBool, tokio::sync::Notify)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The bound address.
    pub addr: SocketAddr,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ApiServer {
    /// Bind and serve with the default [`Limits`].
    pub fn start(addr: &str, node: Arc<dyn NodeApi>) -> anyhow::Result<ApiServer> {
        Self::start_with(addr, node, Limits::default())
    }

    /// Bind and serve with `limits`.
    pub fn start_with(
        addr: &str,
        node: Arc<dyn NodeApi>,
        limits: Limits,
    ) -> anyhow::Result<ApiServer> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("api: cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        // std listens with a backlog of 128: a burst of clients connecting
        // at once overflowed it (the kernel drops their handshakes, and a
        // client that already sent its request gets a reset). Listening
        // again on a listening socket only raises its backlog (the kernel
        // caps it at net.core.somaxconn).
        {
            use std::os::fd::AsRawFd as _;
            // SAFETY: listen(2) on a socket we own; no pointers.
            if unsafe { libc::listen(listener.as_raw_fd(), ACCEPT_BACKLOG) } != 0 {
                tracing::warn!(
                    "api: could not raise the accept backlog: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(limits.readers_max + 2)
            .thread_name("api-read")
            .build()
            .map_err(|e| anyhow::anyhow!("api: runtime: {e}"))?;
        let cx = Arc::new(Ctx {
            readers: Arc::new(tokio::sync::Semaphore::new(limits.readers_max)),
            node,
            limits,
            clients: Clients {
                map: Mutex::new(HashMap::new()),
                total: AtomicUsize::new(0),
            },
            ws_live: AtomicUsize::new(0),
        });
        let stop = Arc::new((AtomicBool::new(false), tokio::sync::Notify::new()));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("api: listener: {e}");
                            return;
                        }
                    };
                    accept_loop(listener, cx, &stop2).await;
                });
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        Ok(ApiServer {
            stop,
            thread: Some(thread),
            addr: local,
        })
    }

    /// Stop accepting and drop every open connection.
    pub fn stop(mut self) {
        self.stop.0.store(true, Ordering::SeqCst);
        self.stop.1.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    cx: Arc<Ctx>,
    stop: &(AtomicBool, tokio::sync::Notify),
) {
    while !stop.0.load(Ordering::SeqCst) {
        let accepted = tokio::select! {
            () = stop.1.notified() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::warn!("api: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(guard) = cx.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = Arc::new(guard);
        let cx2 = cx.clone();
        tokio::spawn(async move {
            let service = {
                let guard = guard.clone();
                hyper::service::service_fn(move |req| {
                    let (cx, guard) = (cx2.clone(), guard.clone());
                    async move { Ok::<_, std::convert::Infallible>(handle(req, cx, guard).await) }
                })
            };
            let limits = &guard.cx.limits;
            let node = guard.cx.node.clone();
            let stream = WriteDeadline::new(
                stream,
                limits.write_timeout,
                Box::new(move || {
                    tracing::debug!(%peer, "api: a client stopped reading its response");
                    node.shed("api_write_timeout");
                }),
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.head_timeout)
                .max_buf_size(limits.head_bytes_max.max(8192))
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

fn reply(status: u16, ctype: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", ctype)
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn json_error(status: u16, code: i64, msg: String) -> Response<Full<Bytes>> {
    let body = error_response(Value::Null, &ApiError::new(code, msg)).to_string();
    let mut r = reply(status, "application/json", body);
    r.headers_mut().insert(
        "connection",
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

async fn handle(req: Request<Incoming>, cx: Arc<Ctx>, client: Arc<Guard>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let dashboard = path == "/dashboard" || path.starts_with("/dashboard/");
    if let Some(want) = &cx.limits.token {
        if path != "/health" && path != "/dashboard/login" && !super::auth::authorized(&req, want) {
            cx.node.shed("api_unauthorized");
            return if dashboard {
                super::dashboard::unauthorized()
            } else {
                json_error(
                    401,
                    codes::UNAUTHORIZED,
                    "this node requires an access token: Authorization: Bearer <token>".into(),
                )
            };
        }
    }
    if dashboard {
        if !cx.allow(client.ip, 1) {
            cx.node.shed("api_rate_limited");
            return reply(429, "text/plain", "too many requests from this client\n");
        }
        return super::dashboard::serve(req, cx).await;
    }
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/") => {
            let mut r = reply(303, "text/plain", "the dashboard: /dashboard\n");
            r.headers_mut().insert(
                "location",
                hyper::header::HeaderValue::from_static("/dashboard"),
            );
            r
        }
        ("GET", "/health") => {
            let (ok, detail) = cx.node.health();
            reply(
                if ok { 200 } else { 503 },
                "application/json",
                detail.to_string(),
            )
        }
        ("GET", "/metrics") => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            cx.node.metrics_text(),
        ),
        ("GET", "/ws") => upgrade(req, cx, client),
        ("GET", "/bin") => upgrade_bin(req, cx, client),
        ("POST", "/") | ("POST", "/rpc") => {
            let max = cx.limits.request_bytes_max;
            let declared = req
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > max as u64) {
                cx.node.shed("api_body_too_large");
                return json_error(
                    413,
                    codes::INVALID_REQUEST,
                    format!("request body over {max} bytes"),
                );
            }
            let body = tokio::time::timeout(
                cx.limits.body_timeout,
                Limited::new(req.into_body(), max).collect(),
            )
            .await;
            let body = match body {
                Ok(Ok(b)) => b.to_bytes().to_vec(),
                Ok(Err(e)) => {
                    cx.node.shed("api_body_too_large");
                    return json_error(413, codes::INVALID_REQUEST, format!("request body: {e}"));
                }
                Err(_) => {
                    cx.node.shed("api_body_timeout");
                    return json_error(
                        408,
                        codes::INVALID_REQUEST,
                        format!(
                            "request body not received within {:?}",
                            cx.limits.body_timeout
                        ),
                    );
                }
            };
            let (status, text) = cx.rpc(body, &client).await;
            reply(status, "application/json", text)
        }
        _ => reply(404, "text/plain", "not found\n"),
    }
}

/// Switch to the binary protocol (`super::bin`).
fn upgrade_bin(
    mut req: Request<Incoming>,
    cx: Arc<Ctx>,
    client: Arc<Guard>,
) -> Response<Full<Bytes>> {
    let wanted = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case(super::bin::PROTOCOL));
    if !wanted {
        return reply(
            400,
            "text/plain",
            format!("expected Upgrade: {}\n", super::bin::PROTOCOL),
        );
    }
    let finality = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "finality=1"));
    if cx.ws_live.fetch_add(1, Ordering::Relaxed) >= cx.limits.ws_connections_max {
        cx.ws_live.fetch_sub(1, Ordering::Relaxed);
        cx.node.shed("ws_connections_full");
        return reply(503, "text/plain", "too many streaming connections\n");
    }
    let slot = WsSlot(cx.clone());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => super::bin::session(upgraded, cx, client, slot, finality).await,
            Err(e) => tracing::debug!("api: binary upgrade failed: {e}"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", super::bin::PROTOCOL)
        .header("connection", "Upgrade")
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn upgrade(mut req: Request<Incoming>, cx: Arc<Ctx>, client: Arc<Guard>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let is_ws = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = header("sec-websocket-key").filter(|_| is_ws) else {
        return reply(400, "text/plain", "expected a WebSocket upgrade\n");
    };
    if cx.ws_live.fetch_add(1, Ordering::Relaxed) >= cx.limits.ws_connections_max {
        cx.ws_live.fetch_sub(1, Ordering::Relaxed);
        cx.node.shed("ws_connections_full");
        return reply(503, "text/plain", "too many WebSocket connections\n");
    }
    let slot = WsSlot(cx.clone());
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => super::ws::session(upgraded, cx, client, slot).await,
            Err(e) => tracing::debug!("api: websocket upgrade failed: {e}"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
