//! Alert webhook: the observer POSTs each alert as JSON to the
//! `[alerts] webhook` URL (`http://host:port/path`, plain HTTP/1.1), from
//! a thread of its own behind a bounded queue, so a slow or dead receiver
//! never delays indexing. A delivery is tried three times (0.5 s, 1 s
//! apart, 2 s deadline each); an alert that cannot be delivered, or finds
//! the queue full, is counted (`plume_alert_webhook_failed_total`) and
//! stays in the index (`plume_alerts`).

use crate::metrics::NodeMetrics;
use anyhow::{anyhow, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Alerts waiting for delivery.
pub const WEBHOOK_QUEUE_MAX: usize = 1024;
/// Deadline of one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

pub use crate::config::{parse_webhook as parse, WebhookTarget as Target};

fn post(t: &Target, body: &str) -> Result<u16> {
    let addr: SocketAddr = t
        .host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("{}: no address", t.host))?;
    let mut s = TcpStream::connect_timeout(&addr, ATTEMPT_TIMEOUT)?;
    s.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
    s.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        t.path,
        t.host,
        body.len()
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = std::str::from_utf8(&head[..n]).unwrap_or("");
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer"))
}

/// Deliver until the stop flag is set and the queue is empty.
pub fn run(t: Target, rx: flume::Receiver<String>, metrics: &NodeMetrics, stop: &AtomicBool) {
    loop {
        let body = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => b,
            Err(flume::RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => return,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        let mut delivered = false;
        for attempt in 0..3u32 {
            match post(&t, &body) {
                Ok(code) if (200..300).contains(&code) => {
                    delivered = true;
                    break;
                }
                Ok(code) => tracing::warn!(code, attempt, "alert webhook answered {code}"),
                Err(e) => tracing::warn!(attempt, "alert webhook: {e:#}"),
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500 << attempt));
        }
        if delivered {
            metrics.alert_webhook_sent.inc();
        } else {
            metrics.alert_webhook_failed.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            parse("http://127.0.0.1:9000/hook?x=1").unwrap(),
            Target {
                host: "127.0.0.1:9000".into(),
                path: "/hook?x=1".into()
            }
        );
        assert_eq!(parse("http://[::1]:80").unwrap().path, "/");
        for bad in [
            "https://a:1/",
            "http://a/",
            "http://u@a:1/",
            "http://a:1/x y",
            "ftp://a:1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_alert_is_posted_and_a_dead_receiver_is_counted() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while !buf[..n].ends_with(b"}") {
                n += s.read(&mut buf[n..]).unwrap();
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let metrics = NodeMetrics::new();
        let stop = AtomicBool::new(false);
        let (tx, rx) = flume::bounded(4);
        tx.send(r#"{"kind":"large_transfer"}"#.to_string()).unwrap();
        drop(tx);
        run(
            parse(&format!("http://{addr}/hook")).unwrap(),
            rx,
            &metrics,
            &stop,
        );
        let req = got.join().unwrap();
        assert!(req.starts_with("POST /hook HTTP/1.1\r\n"), "{req}");
        assert!(req.ends_with(r#"{"kind":"large_transfer"}"#), "{req}");
        assert_eq!(metrics.alert_webhook_sent.get(), 1);
        // Nobody listening: three attempts, then counted as failed.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let (tx, rx) = flume::bounded(4);
        tx.send("{}".to_string()).unwrap();
        drop(tx);
        run(
            parse(&format!("http://{dead_addr}/")).unwrap(),
            rx,
            &metrics,
            &stop,
        );
        assert_eq!(metrics.alert_webhook_failed.get(), 1);
    }
}
