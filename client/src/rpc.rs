//! A small blocking JSON-RPC/HTTP client for `plume tx`, `plume query`,
//! `plume devnet`'s load generator and the tests. Keep-alive connection,
//! bounded response size, timeouts on every call.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with a JSON-RPC error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// No connection, or it broke.
    #[error("{addr}: {err}")]
    Io {
        /// The node's address.
        addr: String,
        /// What failed.
        err: std::io::Error,
    },
    /// The node's reply is not what the protocol says.
    #[error("{0}")]
    BadReply(String),
}

impl ClientError {
    /// The node's JSON-RPC error, if that is what this is.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            ClientError::Rpc(e) => Some(e),
            _ => None,
        }
    }
}

type Result<T, E = ClientError> = std::result::Result<T, E>;

fn bad(s: impl Into<String>) -> ClientError {
    ClientError::BadReply(s.into())
}

/// Largest response accepted.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Time allowed for one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A keep-alive connection to one node's API.
#[derive(Debug)]
pub struct RpcClient {
    addr: String,
    stream: Option<TcpStream>,
    next_id: u64,
    token: Option<String>,
}

/// The environment variable a node's API access token is read from
/// (`[api] token_file` on the node): sent as `Authorization: Bearer`.
pub const TOKEN_ENV: &str = "PLUME_API_TOKEN";

fn env_token() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn auth_header(token: Option<&str>) -> String {
    token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"))
}

impl RpcClient {
    /// A client for `host:port` (connects lazily); sends the access token
    /// from `PLUME_API_TOKEN` when it is set.
    pub fn new(addr: &str) -> Self {
        RpcClient {
            addr: addr.to_string(),
            stream: None,
            next_id: 1,
            token: env_token(),
        }
    }

    /// Send this access token (a node with `[api] token_file`).
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    fn io(&self, err: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            err,
        }
    }

    fn connect(&mut self) -> Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = (|| -> std::io::Result<TcpStream> {
                let s = TcpStream::connect(&self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(CALL_TIMEOUT))?;
                s.set_write_timeout(Some(CALL_TIMEOUT))?;
                Ok(s)
            })()
            .map_err(|e| self.io(e))?;
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("just set"))
    }

    /// POST a raw body to `/`, return the status and parsed JSON.
    pub fn post(&mut self, body: &[u8]) -> Result<Value> {
        // One retry on a fresh connection if a kept-alive one was closed.
        for attempt in 0..2 {
            let addr = self.addr.clone();
            let auth = auth_header(self.token.as_deref());
            let r = (|| -> Result<Value> {
                let s = self.connect()?;
                let head = format!(
                    "POST / HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let io = |err| ClientError::Io {
                    addr: addr.clone(),
                    err,
                };
                s.write_all(head.as_bytes()).map_err(io)?;
                s.write_all(body).map_err(io)?;
                let (status, resp) = read_response(s, &addr)?;
                if status == 401 {
                    return Err(bad(format!(
                        "HTTP 401: the node requires its API token (set {TOKEN_ENV}): {}",
                        String::from_utf8_lossy(&resp)
                    )));
                }
                if status != 200 {
                    return Err(bad(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&resp)
                    )));
                }
                serde_json::from_slice(&resp).map_err(|e| bad(format!("reply is not JSON: {e}")))
            })();
            match r {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.stream = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        Err(bad("no attempt made"))
    }

    /// Call one method; a JSON-RPC error becomes an [`RpcError`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let v = self.post(req.to_string().as_bytes())?;
        into_result(v)
    }

    /// Call the same method with many parameter sets in one batch; returns
    /// one result per call, in order.
    pub fn call_batch(
        &mut self,
        method: &str,
        params: &[Value],
    ) -> Result<Vec<Result<Value, RpcError>>> {
        let calls: Vec<Value> = params
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"jsonrpc": "2.0", "id": i, "method": method, "params": p}))
            .collect();
        let v = self.post(Value::Array(calls).to_string().as_bytes())?;
        let arr = v
            .as_array()
            .ok_or_else(|| bad(format!("batch reply is not an array: {v}")))?;
        let mut out: Vec<Option<Result<Value, RpcError>>> = vec![None; params.len()];
        for r in arr {
            let i = r["id"]
                .as_u64()
                .ok_or_else(|| bad("batch reply without id"))? as usize;
            if i < out.len() {
                out[i] = Some(match r.get("error") {
                    Some(e) => Err(RpcError {
                        code: e["code"].as_i64().unwrap_or(0),
                        message: e["message"].as_str().unwrap_or("").to_string(),
                    }),
                    None => Ok(r["result"].clone()),
                });
            }
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| bad("batch reply missing an id")))
            .collect()
    }
}

/// A JSON-RPC error returned by the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node error {code}: {message}")]
pub struct RpcError {
    /// Code (see the node's API documentation: README, JSON-RPC API).
    pub code: i64,
    /// Message.
    pub message: String,
}

fn into_result(v: Value) -> Result<Value> {
    if let Some(e) = v.get("error") {
        return Err(RpcError {
            code: e["code"].as_i64().unwrap_or(0),
            message: e["message"].as_str().unwrap_or("").to_string(),
        }
        .into());
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}

fn read_response(s: &mut TcpStream, addr: &str) -> Result<(u16, Vec<u8>)> {
    let io = |err| ClientError::Io {
        addr: addr.to_string(),
        err,
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = resp
            .parse(&buf)
            .map_err(|e| bad(format!("bad HTTP response: {e}")))?;
        if let httparse::Status::Complete(head) = parsed {
            let status = resp.code.unwrap_or(0);
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .ok_or_else(|| bad("response without content-length"))?;
            if len > RESPONSE_BYTES_MAX {
                return Err(bad(format!("response of {len} bytes is too large")));
            }
            while buf.len() < head + len {
                let n = s.read(&mut chunk).map_err(io)?;
                if n == 0 {
                    return Err(bad("connection closed mid-response"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, buf[head..head + len].to_vec()));
        }
        if buf.len() > 64 * 1024 {
            return Err(bad("response head too large"));
        }
        let n = s.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err(bad("connection closed before a response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One-shot JSON-RPC call.
pub fn rpc(addr: &str, method: &str, params: Value) -> Result<Value> {
    RpcClient::new(addr).call(method, params)
}

/// One-shot GET; returns status and body text (with the token from
/// `PLUME_API_TOKEN` when it is set).
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let io = |err| ClientError::Io {
        addr: addr.to_string(),
        err,
    };
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_read_timeout(Some(CALL_TIMEOUT)).map_err(io)?;
    let auth = auth_header(env_token().as_deref());
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").as_bytes())
        .map_err(io)?;
    let (status, body) = read_response(&mut s, addr)?;
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}
