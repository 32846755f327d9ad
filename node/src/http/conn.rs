//! What every API connection shares ([`Ctx`]): the node, the limits, the
//! per-client-address connection counts and call budgets, the store-reader
//! permits and the WebSocket slots; and running one JSON-RPC body
//! ([`Ctx::rpc`]) for HTTP and WebSocket alike.

use super::{codes, error_response, ApiError, Limits, NodeApi, Prepared};
use crate::budget::Bucket;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Client addresses remembered for rate limits (idle ones are forgotten
/// first when the table is full).
pub const CLIENTS_MAX: usize = 65_536;

pub(super) struct Client {
    conns: usize,
    calls: Bucket,
}

/// Per-client-address connection counts and call budgets.
pub(super) struct Clients {
    pub(super) map: Mutex<HashMap<IpAddr, Client>>,
    pub(super) total: AtomicUsize,
}

/// One admitted connection; released when dropped.
pub(super) struct Guard {
    pub(super) cx: Arc<Ctx>,
    pub(super) ip: IpAddr,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.cx.clients.total.fetch_sub(1, Ordering::Relaxed);
        let mut map = self
            .cx
            .clients
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get_mut(&self.ip) {
            c.conns = c.conns.saturating_sub(1);
        }
    }
}

/// One of the [`Limits::ws_connections_max`] WebSocket slots.
pub(super) struct WsSlot(pub(super) Arc<Ctx>);

impl Drop for WsSlot {
    fn drop(&mut self) {
        self.0.ws_live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every connection shares.
pub(super) struct Ctx {
    pub(super) node: Arc<dyn NodeApi>,
    pub(super) limits: Limits,
    pub(super) clients: Clients,
    pub(super) readers: Arc<tokio::sync::Semaphore>,
    pub(super) ws_live: AtomicUsize,
}

impl Ctx {
    /// Admit a connection from `ip`, or refuse it (counted).
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Guard> {
        let l = &self.limits;
        if self.clients.total.fetch_add(1, Ordering::Relaxed) >= l.connections_max {
            self.clients.total.fetch_sub(1, Ordering::Relaxed);
            self.node.shed("api_connections_full");
            return None;
        }
        let mut map = self.clients.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CLIENTS_MAX && !map.contains_key(&ip) {
            map.retain(|_, c| c.conns > 0);
        }
        let c = map.entry(ip).or_insert_with(|| Client {
            conns: 0,
            calls: Bucket::new(l.calls_per_s, l.calls_burst, Instant::now()),
        });
        if c.conns >= l.connections_per_client {
            drop(map);
            self.clients.total.fetch_sub(1, Ordering::Relaxed);
            self.node.shed("api_client_connections");
            return None;
        }
        c.conns += 1;
        Some(Guard {
            cx: self.clone(),
            ip,
        })
    }

    /// Take `n` calls from `ip`'s rate budget.
    pub(super) fn allow(&self, ip: IpAddr, n: usize) -> bool {
        let mut map = self.clients.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get_mut(&ip)
            .is_some_and(|c| c.calls.take(n as f64, Instant::now()))
    }

    /// Run a JSON-RPC body: parse and call on the blocking pool (holding a
    /// reader permit), then wait for submissions here.
    pub(super) async fn rpc(self: &Arc<Self>, body: Vec<u8>, client: &Guard) -> (u16, String) {
        let busy = |why: &str| {
            error_response(
                Value::Null,
                &ApiError::new(codes::UNAVAILABLE, format!("node busy: {why}; retry")),
            )
            .to_string()
        };
        // One call charged before a reader is taken: a client already over
        // its rate costs no parse on the blocking pool.
        if !self.allow(client.ip, 1) {
            self.node.shed("api_rate_limited");
            let e = ApiError::new(
                codes::RATE_LIMITED,
                format!(
                    "more than {} calls per second from this client; slow down",
                    self.limits.calls_per_s
                ),
            );
            return (429, error_response(Value::Null, &e).to_string());
        }
        let permit = match tokio::time::timeout(
            self.limits.reader_wait,
            self.readers.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => {
                self.node.shed("api_readers_busy");
                return (503, busy("every store reader is in use"));
            }
        };
        let cx = self.clone();
        let ip = client.ip;
        let prepared: Result<Prepared, _> = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // One call was charged before the permit.
            super::prepare(&body, cx.node.as_ref(), &cx.limits, &mut |n| {
                cx.allow(ip, n.saturating_sub(1))
            })
        })
        .await;
        let Ok(prepared) = prepared else {
            return (500, busy("the call failed"));
        };
        let status = prepared.status();
        let deadline = tokio::time::Instant::now() + self.limits.submit_wait;
        let (text, admitted) = prepared.finish(deadline).await;
        if !admitted.is_empty() {
            self.node.submitted(&admitted, Instant::now());
        }
        (status, text)
    }
}
