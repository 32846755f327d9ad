//! The server against a stand-in node: shapes, limits, and what a slow or
//! hostile client gets.

use super::*;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A node that echoes, counts what it shed, and keeps its sinks.
#[derive(Default)]
struct Echo {
    sinks: Mutex<Vec<Sink>>,
    shed: Mutex<Vec<&'static str>>,
    calls: AtomicU64,
}

impl NodeApi for Echo {
    fn call(&self, method: &str, params: &Value) -> Result<Value, ApiError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match method {
            "echo" => Ok(params.clone()),
            "big" => Ok(Value::String("x".repeat(1000))),
            "sleep" => {
                std::thread::sleep(Duration::from_millis(200));
                Ok(Value::Null)
            }
            _ => Err(ApiError::new(
                codes::METHOD_NOT_FOUND,
                format!("unknown method {method}"),
            )),
        }
    }
    fn submit(&self, params: &[Value]) -> Vec<Result<Pending, ApiError>> {
        params
            .iter()
            .map(|p| {
                let (tx, rx) = flume::bounded(1);
                let h = plume_crypto::merkle::leaf_hash(p.to_string().as_bytes());
                tx.send(Ok(h)).expect("receiver held");
                Ok(rx)
            })
            .collect()
    }
    fn metrics_text(&self) -> String {
        "plume_up 1\n".into()
    }
    fn health(&self) -> (bool, Value) {
        (true, json!({"ok": true}))
    }
    fn subscribe(&self, _t: Topic, sink: Sink) -> Result<(), ApiError> {
        sink.offer(ws::notification(sink.id, r#"{"height":1}"#));
        self.sinks.lock().unwrap().push(sink);
        Ok(())
    }
    fn shed(&self, reason: &'static str) {
        self.shed.lock().unwrap().push(reason);
    }
}

impl Echo {
    fn shed_count(&self, reason: &str) -> usize {
        self.shed
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == reason)
            .count()
    }
}

fn start(limits: Limits) -> (ApiServer, Arc<Echo>) {
    let node = Arc::new(Echo::default());
    let srv = ApiServer::start_with("127.0.0.1:0", node.clone(), limits).unwrap();
    (srv, node)
}

#[test]
fn rpc_shapes_and_errors() {
    let e = Echo::default();
    let r = handle_rpc_bytes(
        br#"{"jsonrpc":"2.0","id":7,"method":"echo","params":[1]}"#,
        &e,
    );
    assert_eq!(r, json!({"jsonrpc":"2.0","id":7,"result":[1]}));
    let r = handle_rpc_bytes(b"{nope", &e);
    assert_eq!(r["error"]["code"], codes::PARSE_ERROR);
    let r = handle_rpc_bytes(br#"{"id":1,"method":"echo"}"#, &e);
    assert_eq!(r["error"]["code"], codes::INVALID_REQUEST);
    let r = handle_rpc_bytes(br#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#, &e);
    assert_eq!(r["error"]["code"], codes::METHOD_NOT_FOUND);
    let r = handle_rpc_bytes(
        br#"[{"jsonrpc":"2.0","id":1,"method":"echo","params":2},{"jsonrpc":"2.0","id":2,"method":"x"}]"#,
        &e,
    );
    assert_eq!(r[0]["result"], 2);
    assert_eq!(r[1]["error"]["code"], codes::METHOD_NOT_FOUND);
    let r = handle_rpc_bytes(b"[]", &e);
    assert_eq!(r["error"]["code"], codes::INVALID_REQUEST);
    // Submissions and other calls mixed: each answer in its place.
    let r = handle_rpc_bytes(
        br#"[{"jsonrpc":"2.0","id":1,"method":"plume_submitTransaction","params":["aa"]},{"jsonrpc":"2.0","id":2,"method":"echo","params":3}]"#,
        &e,
    );
    assert_eq!(r[0]["id"], 1);
    assert_eq!(r[0]["result"]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(r[1]["result"], 3);
}

#[test]
fn batch_size_and_response_budget_are_enforced() {
    let limits = Limits {
        batch_calls_max: 10,
        response_bytes_max: 5_000,
        ..Limits::default()
    };
    let e = Echo::default();
    let call = |m: &str, n: usize| {
        let calls: Vec<Value> = (0..n)
            .map(|i| json!({"jsonrpc":"2.0","id":i,"method":m}))
            .collect();
        serde_json::to_vec(&calls).unwrap()
    };
    let run = |body: &[u8]| {
        let p = prepare(body, &e, &limits, &mut |_| true);
        let (t, _) = p.finish_blocking(Instant::now() + Duration::from_secs(1));
        serde_json::from_str::<Value>(&t).unwrap()
    };
    let r = run(&call("echo", 11));
    assert_eq!(r["error"]["code"], codes::INVALID_REQUEST, "{r}");
    assert_eq!(e.calls.load(Ordering::Relaxed), 0, "nothing ran");
    // Ten 1,000-byte results against a 5,000-byte budget: the first four
    // fit, the rest are refused without running.
    let r = run(&call("big", 10));
    let arr = r.as_array().unwrap();
    assert_eq!(arr.len(), 10);
    let ok = arr.iter().filter(|c| c.get("result").is_some()).count();
    assert_eq!(ok, 4, "{r}");
    assert!(arr[4..]
        .iter()
        .all(|c| c["error"]["code"] == codes::RESPONSE_TOO_LARGE));
    assert_eq!(
        e.calls.load(Ordering::Relaxed),
        5,
        "calls past the budget did not run"
    );
    assert_eq!(e.shed_count("api_batch_too_large"), 1);
    assert_eq!(e.shed_count("api_response_too_large"), 1);
}

#[test]
fn a_client_over_its_call_rate_gets_429() {
    let (srv, node) = start(Limits {
        calls_per_s: 1.0,
        calls_burst: 5.0,
        ..Limits::default()
    });
    let addr = srv.addr.to_string();
    let calls: Vec<Value> = (0..5)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"echo","params":i}))
        .collect();
    let (status, body) = post(&addr, &serde_json::to_vec(&calls).unwrap());
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&addr, br#"{"jsonrpc":"2.0","id":1,"method":"echo"}"#);
    assert_eq!(status, 429, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], codes::RATE_LIMITED);
    assert_eq!(node.shed_count("api_rate_limited"), 1);
    // Health is not rate limited.
    assert_eq!(plume_client::http_get(&addr, "/health").unwrap().0, 200);
    srv.stop();
}

/// POST `body` on a fresh connection; (status, body).
fn post(addr: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn http_endpoints_and_websocket_subscription() {
    let (srv, _node) = start(Limits::default());
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
    ws.send(tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":2,"method":"echo","params":5}"#,
    ))
    .unwrap();
    let (mut got_sub_id, mut got_note, mut got_call) = (false, false, false);
    for _ in 0..6 {
        let m: Value = serde_json::from_str(&ws.read().unwrap().to_string()).unwrap();
        if m["id"] == 1 {
            got_sub_id = m["result"] == 1;
        }
        if m["id"] == 2 {
            got_call = m["result"] == 5;
        }
        if m["method"] == "plume_subscription" {
            got_note = m["params"]["result"]["height"] == 1 && m["params"]["subscription"] == 1;
        }
        if got_sub_id && got_note && got_call {
            break;
        }
    }
    assert!(got_sub_id && got_note && got_call);
    srv.stop();
}

#[test]
fn a_subscriber_that_stops_reading_is_closed_with_a_reason_and_memory_stays_bounded() {
    let (srv, node) = start(Limits {
        ws_queue_bytes_max: 256 * 1024,
        ..Limits::default()
    });
    let addr = srv.addr;
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws")).unwrap();
    ws.send(tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"plume_subscribe","params":["blocks"]}"#,
    ))
    .unwrap();
    let sink = loop {
        if let Some(s) = node.sinks.lock().unwrap().first().cloned() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The client reads nothing while 64 KiB notes are offered: the socket
    // buffers fill, then the queue; past its byte bound the sink is cut.
    let note = format!("\"{}\"", "n".repeat(64 * 1024));
    let mut cut = false;
    for _ in 0..20_000 {
        match sink.offer(ws::notification(sink.id, &note)) {
            ws::Offer::Queued => {}
            _ => {
                cut = true;
                break;
            }
        }
        assert!(sink.state.queued() <= 256 * 1024, "never over the bound");
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(cut, "a subscriber that never reads is cut");
    // Reading now: the queued notes, then a close frame with the reason.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reason = None;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => {
                reason = Some((f.code, f.reason.to_string()));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let (code, reason) = reason.expect("a close frame");
    assert_eq!(
        code,
        tungstenite::protocol::frame::coding::CloseCode::Policy
    );
    assert!(reason.contains("too slow"), "{reason}");
    assert_eq!(node.shed_count("ws_subscriber_too_slow"), 1);
    srv.stop();
}

#[test]
fn an_oversized_websocket_message_closes_the_connection() {
    let (srv, node) = start(Limits {
        ws_message_bytes_max: 4096,
        ..Limits::default()
    });
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/ws", srv.addr)).unwrap();
    let _ = ws.send(tungstenite::Message::text("x".repeat(10_000)));
    let mut closed = false;
    for _ in 0..4 {
        match ws.read() {
            Ok(tungstenite::Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed);
    assert_eq!(node.shed_count("ws_bad_message"), 1);
    srv.stop();
}

/// Open `n` connections from `from` that send half a request head.
fn slowloris(addr: std::net::SocketAddr, from: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = plume_netstack::tcp::connect_from(from.parse().ok()?, addr).ok()?;
            let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            Some(s)
        })
        .collect()
}

#[test]
fn slowloris_from_one_address_neither_starves_others_nor_holds_its_slots() {
    let (srv, node) = start(Limits {
        connections_per_client: 64,
        head_timeout: Duration::from_secs(6),
        ..Limits::default()
    });
    let addr = srv.addr;
    let held = slowloris(addr, "127.0.0.2", 200);
    assert_eq!(held.len(), 200, "the kernel accepted every connection");
    // Health and calls from another address are answered meanwhile.
    let t0 = Instant::now();
    for _ in 0..20 {
        let (status, _) = plume_client::http_get(&addr.to_string(), "/health").unwrap();
        assert_eq!(status, 200);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "health calls were not held behind the attack"
    );
    let v = plume_client::rpc(&addr.to_string(), "echo", json!(1)).unwrap();
    assert_eq!(v, json!(1));
    // Past 64 connections from 127.0.0.2 the server refused at accept.
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.shed_count("api_client_connections") < 136 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(node.shed_count("api_client_connections"), 136);
    // The refused ones are closed at once, the 64 admitted ones once the
    // head timeout passes: every read ends (end of stream or reset), none
    // times out.
    let mut closed = 0;
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut b = [0u8; 256];
        match s.read(&mut b) {
            Ok(_) => closed += 1,
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                closed += 1
            }
            Err(e) => panic!("a slowloris connection was still open: {e}"),
        }
    }
    assert_eq!(closed, 200);
    // 127.0.0.2 may connect again.
    let again = slowloris(addr, "127.0.0.2", 1);
    assert_eq!(again.len(), 1);
    srv.stop();
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_head_timeout() {
    let (srv, _node) = start(Limits {
        head_timeout: Duration::from_secs(1),
        ..Limits::default()
    });
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1024];
    let n = s.read(&mut b).unwrap();
    assert!(String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 200"));
    let t0 = Instant::now();
    let n = s.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "closed, not answered");
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    srv.stop();
}

#[test]
fn a_body_that_never_arrives_times_out_and_a_huge_one_is_refused_unread() {
    let (srv, node) = start(Limits {
        body_timeout: Duration::from_secs(1),
        request_bytes_max: 1000,
        ..Limits::default()
    });
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    let (status, _) = post(&srv.addr.to_string(), &vec![b' '; 2000]);
    assert_eq!(status, 413);
    assert_eq!(node.shed_count("api_body_timeout"), 1);
    assert_eq!(node.shed_count("api_body_too_large"), 1);
    srv.stop();
}

#[test]
fn calls_wait_for_a_reader_and_health_does_not() {
    let (srv, node) = start(Limits {
        readers_max: 2,
        reader_wait: Duration::from_millis(300),
        ..Limits::default()
    });
    let addr = srv.addr.to_string();
    // Eight 200 ms calls on two readers: some wait, some are refused busy.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || post(&addr, br#"{"jsonrpc":"2.0","id":1,"method":"sleep"}"#))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    assert_eq!(plume_client::http_get(&addr, "/health").unwrap().0, 200);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "health needs no reader (the calls hold them for 200 ms each, up to 800 ms)"
    );
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap().0).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(node.shed_count("api_readers_busy") >= 1);
    assert!(node.calls.load(Ordering::Relaxed) <= 8);
    srv.stop();
}

#[test]
fn a_silent_subscriber_is_closed_once_nothing_was_heard_for_the_idle_time() {
    let (srv, node) = start(Limits {
        ws_idle: Duration::from_secs(1),
        ..Limits::default()
    });
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/ws", srv.addr)).unwrap();
    ws.send(tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"plume_subscribe","params":["blocks"]}"#,
    ))
    .unwrap();
    // Silent: it neither reads nor answers pings.
    std::thread::sleep(Duration::from_millis(2500));
    let mut reason = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(f))) => {
                reason = Some(f.reason.to_string());
                break;
            }
            Ok(m) => seen.push(format!("{m:?}")),
            Err(e) => {
                seen.push(format!("error {e}"));
                break;
            }
        }
    }
    // The close frame says why, unless the client's automatic pong hit
    // the closed socket first (then the read fails): either way it ended.
    let ended = reason
        .as_deref()
        .is_some_and(|r| r.contains("nothing heard"))
        || seen.last().is_some_and(|l| l.starts_with("error"));
    assert!(ended, "{reason:?} after {seen:?}");
    assert_eq!(node.shed_count("ws_idle"), 1);
    srv.stop();
}

#[test]
fn a_subscriber_that_answers_pings_stays() {
    let (srv, _node) = start(Limits {
        ws_idle: Duration::from_millis(600),
        ..Limits::default()
    });
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/ws", srv.addr)).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    ws.send(tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"plume_subscribe","params":["blocks"]}"#,
    ))
    .unwrap();
    // Reading answers pings (tungstenite replies to each): 2 s, several
    // idle periods, and the connection is still open.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match ws.read() {
            Ok(tungstenite::Message::Close(f)) => panic!("closed: {f:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    srv.stop();
}

#[test]
fn a_client_that_stops_reading_its_responses_is_closed_after_the_write_timeout() {
    let (srv, node) = start(Limits {
        write_timeout: Duration::from_secs(1),
        connections_per_client: 1,
        ..Limits::default()
    });
    // Twenty pipelined 1 MB answers, never read: far more than the socket
    // buffers hold, so the server's write stalls.
    let calls: Vec<Value> = (0..1000)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"big"}))
        .collect();
    let body = serde_json::to_vec(&calls).unwrap();
    let mut s = TcpStream::connect(srv.addr).unwrap();
    let mut w = s.try_clone().unwrap();
    // Writing blocks once the server stops reading (it writes first) and
    // fails once it closed: on its own thread, errors ignored.
    let writer = std::thread::spawn(move || {
        for _ in 0..20 {
            let head = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if w.write_all(head.as_bytes()).is_err() || w.write_all(&body).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.shed_count("api_write_timeout") == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled write never timed out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The connection is gone: its one slot for this address is free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = post(
            &srv.addr.to_string(),
            br#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}"#,
        );
        if status == 200 {
            assert!(text.contains("\"result\""), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slot not released: {status} {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // What the stalled client reads ends: the server closed it.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut ended = false;
    for _ in 0..1000 {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => {
                ended = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(ended, "the stalled connection was closed");
    writer.join().unwrap();
    assert_eq!(node.shed_count("api_write_timeout"), 1);
    srv.stop();
}
