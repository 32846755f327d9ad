//! The dashboard: server-rendered HTML pages under `/dashboard` on the API
//! listener (axum routes, maud templates, no script and no asset to build
//! or fetch). Every page reads through the node's own API methods
//! ([`NodeApi::call`]) on the blocking pool under a reader permit, like a
//! JSON-RPC call; long lists page with the API's cursors, so an account
//! with a million flows shows 50 at a time.
//!
//! Routes (all `GET`; any other method answers 405: there is no mutating
//! route):
//!
//! | route | shows |
//! | --- | --- |
//! | `/dashboard` | status, live throughput (refreshes every 2 s), latest blocks and alerts |
//! | `/dashboard/blocks?before=H` | indexed blocks, newest first |
//! | `/dashboard/block/{height}` | a block, its batches and transactions |
//! | `/dashboard/alerts?before=C` | the alert feed, newest first |
//! | `/dashboard/account/{address}?before=C` | balance with its state proof, counterparty graph, flows |
//! | `/dashboard/tx/{hash}` | a transaction's trace: flows, receipt, finality proof |
//! | `/dashboard/volume` | volume per asset over the last 10,000 blocks |
//! | `/dashboard/search?q=` | a height, transaction hash or address |
//! | `/dashboard/login?token=T&next=P` | sets the access-token cookie (when `api.token_file` is set) |

use super::conn::Ctx;
use super::{codes, ApiError, NodeApi};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt as _;

type Cx = Arc<Ctx>;
type Q = Query<HashMap<String, String>>;

/// Rows on one page of a list.
pub const PAGE_ROWS: u64 = 50;
/// Counterparties drawn in an account's graph.
pub const GRAPH_NODES: u64 = 12;
use super::auth::TOKEN_COOKIE;

fn routes(cx: Cx) -> Router {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/", get(overview))
        .route("/dashboard/blocks", get(blocks))
        .route("/dashboard/block/{height}", get(block))
        .route("/dashboard/alerts", get(alerts))
        .route("/dashboard/account/{address}", get(account))
        .route("/dashboard/tx/{hash}", get(tx))
        .route("/dashboard/volume", get(volume))
        .route("/dashboard/search", get(search))
        .route("/dashboard/login", get(login))
        .fallback(fallback)
        .with_state(cx)
}

/// Answer one request under `/dashboard`.
pub(super) async fn serve(req: Request<Incoming>, cx: Cx) -> Response<Full<Bytes>> {
    let max = cx.limits.response_bytes_max;
    let resp = match routes(cx).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    let bytes = match Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::from_static(b"page over the response limit\n"),
    };
    Response::from_parts(parts, Full::new(bytes))
}

/// The page a request without the token gets.
pub(super) fn unauthorized() -> Response<Full<Bytes>> {
    let page = layout(
        "Access token required",
        html! {
            p { "This node requires an access token (its " code { "api.token_file" } ")." }
            p { "Open " code { "/dashboard/login?token=YOUR_TOKEN" } " once; the browser keeps it in a cookie." }
        },
        false,
    );
    let mut r = Response::new(Full::new(Bytes::from(page.into_string())));
    *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

async fn fallback(method: axum::http::Method) -> AxResponse {
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        error_page(StatusCode::NOT_FOUND, "No such page.")
    } else {
        let mut r = error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "The dashboard is read-only: every route answers GET only.",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    }
}

/// Run `f` against the node on the blocking pool, holding a reader permit
/// (the same bound as JSON-RPC calls).
async fn read<T: Send + 'static>(
    cx: &Cx,
    f: impl FnOnce(&dyn NodeApi) -> T + Send + 'static,
) -> Result<T, AxResponse> {
    let permit =
        match tokio::time::timeout(cx.limits.reader_wait, cx.readers.clone().acquire_owned()).await
        {
            Ok(Ok(p)) => p,
            _ => {
                cx.node.shed("api_readers_busy");
                return Err(error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Node busy: every store reader is in use; retry.",
                ));
            }
        };
    let node = cx.node.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f(node.as_ref())
    })
    .await
    .map_err(|_| error_page(StatusCode::INTERNAL_SERVER_ERROR, "The page failed."))
}

fn call(n: &dyn NodeApi, method: &str, params: Value) -> Result<Value, ApiError> {
    n.call(method, &params)
}

fn api_error(e: &ApiError) -> AxResponse {
    let status = match e.code {
        codes::NOT_FOUND | codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        codes::INVALID_PARAMS => StatusCode::BAD_REQUEST,
        codes::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(status, &e.message)
}

fn error_page(status: StatusCode, msg: &str) -> AxResponse {
    let page = layout(
        status.canonical_reason().unwrap_or("Error"),
        html! { p.error { (msg) } },
        false,
    );
    html_response(status, page)
}

fn html_response(status: StatusCode, page: Markup) -> AxResponse {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1f2a44;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#fff;text-decoration:none}header form{margin-left:auto}
header input{width:28em;padding:3px}
main{padding:12px 16px}h1{font-size:20px}h2{font-size:16px;margin-top:20px}
table{border-collapse:collapse;background:#fff;min-width:50%}
td,th{border:1px solid #d5d9e0;padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#eef1f5}code,.mono{font-family:ui-monospace,monospace;font-size:12px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #d5d9e0;padding:8px 12px}
.card b{display:block;font-size:20px}.error{color:#a40000}.alert{color:#a40000}
pre{background:#fff;border:1px solid #d5d9e0;padding:8px;overflow-x:auto;max-width:100%}
svg{background:#fff;border:1px solid #d5d9e0}
";

fn layout(title: &str, body: Markup, refresh: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if refresh { meta http-equiv="refresh" content="2"; }
                title { (title) " - Plume" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/dashboard" { b { "Plume" } }
                    a href="/dashboard/blocks" { "Blocks" }
                    a href="/dashboard/alerts" { "Alerts" }
                    a href="/dashboard/volume" { "Volume" }
                    form action="/dashboard/search" method="get" {
                        input type="search" name="q" placeholder="height, transaction hash or address";
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn short(hex: &str) -> String {
    if hex.len() > 16 {
        format!("{}…{}", &hex[..10], &hex[hex.len() - 4..])
    } else {
        hex.to_string()
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn account_link(hex: &Value) -> Markup {
    match hex.as_str() {
        Some(a) if !a.is_empty() => html! {
            a.mono href={ "/dashboard/account/" (a) } title=(a) { (short(a)) }
        },
        _ => html! { span { "-" } },
    }
}

fn tx_link(hex: &Value) -> Markup {
    let h = s(hex);
    html! { a.mono href={ "/dashboard/tx/" (h) } title=(h) { (short(&h)) } }
}

fn block_link(h: &Value) -> Markup {
    let h = s(h);
    html! { a href={ "/dashboard/block/" (h) } { (h) } }
}

fn alerts_table(alerts: &[Value]) -> Markup {
    html! {
        table #alerts {
            tr { th { "height" } th { "kind" } th { "account" } th { "amount" } th { "transaction" } th { "detail" } }
            @for a in alerts {
                tr.alert data-kind=(s(&a["kind"])) data-tx=(s(&a["tx"])) {
                    td { (block_link(&a["height"])) }
                    td { (s(&a["kind"])) }
                    td { (account_link(&a["account"])) }
                    td { (s(&a["amount"])) }
                    td { (tx_link(&a["tx"])) }
                    td { (s(&a["detail"])) }
                }
            }
        }
    }
}

fn flows_table(flows: &[Value], me: Option<&str>) -> Markup {
    html! {
        table #flows {
            tr { th { "height" } th { "#" } th { "from" } th { "to" } th { "asset" } th { "amount" } th { "transaction" } }
            @for f in flows {
                tr {
                    td { (block_link(&f["height"])) }
                    td { (s(&f["index"])) "." (s(&f["seq"])) }
                    td { @if f["from"].as_str() == me && me.is_some() { b { "this account" } } @else { (account_link(&f["from"])) } }
                    td { @if f["to"].as_str() == me && me.is_some() { b { "this account" } } @else { (account_link(&f["to"])) } }
                    td.mono title=(s(&f["asset"])) { (short(&s(&f["asset"]))) }
                    td { (s(&f["amount"])) }
                    td { (tx_link(&f["tx"])) }
                }
            }
        }
    }
}

/// Transactions per second over the newest blocks' arrival times here.
fn throughput(blocks: &[Value]) -> Option<f64> {
    let newest = blocks.first()?["seen_ms"].as_u64()?;
    let window: Vec<&Value> = blocks
        .iter()
        .take_while(|b| b["seen_ms"].as_u64().is_some_and(|t| t + 10_000 >= newest))
        .collect();
    let oldest = window.last()?["seen_ms"].as_u64()?;
    let span = newest.saturating_sub(oldest);
    if window.len() < 2 || span == 0 {
        return None;
    }
    // The oldest block of the window opens it; its transactions came before.
    let txs: u64 = window[..window.len() - 1]
        .iter()
        .filter_map(|b| b["txs"].as_u64())
        .sum();
    Some(txs as f64 * 1000.0 / span as f64)
}

/// Bars of transactions per block, oldest left.
fn sparkline(blocks: &[Value]) -> Markup {
    let bars: Vec<u64> = blocks
        .iter()
        .take(60)
        .map(|b| b["txs"].as_u64().unwrap_or(0))
        .collect();
    let max = bars.iter().copied().max().unwrap_or(0).max(1);
    let (w, h) = (600u64, 60u64);
    let bw = w / 60;
    html! {
        svg #throughput width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" {
            title { "transactions per block, newest right" }
            @for (i, t) in bars.iter().rev().enumerate() {
                @let bh = (t * (h - 4) / max).max(u64::from(*t > 0));
                rect x=(i as u64 * bw) y=(h - bh) width=(bw - 1) height=(bh) fill="#3b6fd6" {}
            }
        }
    }
}

async fn overview(State(cx): State<Cx>) -> AxResponse {
    let data = read(&cx, |n| {
        let status = call(n, "plume_status", json!([]));
        let blocks = call(n, "plume_indexedBlocks", json!([{"limit": 200}]));
        let alerts = call(n, "plume_recentAlerts", json!([{"limit": 10}]));
        (status, blocks, alerts)
    })
    .await;
    let (status, blocks, alerts) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return api_error(&e),
    };
    let blocks = blocks.ok();
    let list: Vec<Value> = blocks
        .as_ref()
        .and_then(|b| b["blocks"].as_array().cloned())
        .unwrap_or_default();
    let tps = throughput(&list);
    let body = html! {
        div.cards #status {
            div.card { "role" b #role { (s(&status["role"])) } }
            div.card { "height (certified state)" b #height { (s(&status["height"])) } }
            @if !status["index_height"].is_null() {
                div.card { "indexed" b #index-height { (s(&status["index_height"])) } }
            }
            div.card { "throughput" b #tps { @match tps { Some(t) => { (format!("{t:.0}")) " tx/s" }, None => "-" } } }
            div.card { "state" b #state { (s(&status["state"])) } }
            div.card { "validators" b { (s(&status["validators"])) } }
            div.card { "peers" b { (s(&status["peers"])) } }
        }
        p.mono { "state root " (s(&status["state_root"])) }
        @if let Some(d) = status["diverged"].as_object() {
            p.error #diverged { "DIVERGED at height " (s(&d["height"])) ": our root " (s(&d["ours"])) ", certified " (s(&d["certified"])) }
        }
        @if blocks.is_some() {
            h2 { "Transactions per block" }
            (sparkline(&list))
            h2 { "Latest blocks" }
            table #blocks {
                tr { th { "height" } th { "transactions" } th { "block" } th { "state root" } }
                @for b in list.iter().take(10) {
                    tr { td { (block_link(&b["height"])) } td { (s(&b["txs"])) } td.mono { (short(&s(&b["id"]))) } td.mono { (short(&s(&b["root"]))) } }
                }
            }
        } @else {
            p { "This node keeps no fund-flow index (an observer does: " code { "plume start --role observer" } ")." }
        }
        @if let Ok(a) = &alerts {
            h2 { "Latest alerts (" (s(&a["total"])) " in all) " a href="/dashboard/alerts" { "all" } }
            (alerts_table(a["alerts"].as_array().map_or(&[][..], |v| v)))
        }
    };
    html_response(StatusCode::OK, layout("Overview", body, true))
}

async fn blocks(State(cx): State<Cx>, Query(q): Q) -> AxResponse {
    let before = q.get("before").and_then(|v| v.parse::<u64>().ok());
    let r = read(&cx, move |n| {
        let mut o = json!({"limit": PAGE_ROWS});
        if let Some(b) = before {
            o["before"] = json!(b);
        }
        call(n, "plume_indexedBlocks", json!([o]))
    })
    .await;
    let v = match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return api_error(&e),
        Err(r) => return r,
    };
    let list = v["blocks"].as_array().cloned().unwrap_or_default();
    let next = (list.len() as u64 == PAGE_ROWS)
        .then(|| list.last().and_then(|b| b["height"].as_u64()))
        .flatten();
    let body = html! {
        table #blocks {
            tr { th { "height" } th { "transactions" } th { "block" } th { "state root" } }
            @for b in &list {
                tr { td { (block_link(&b["height"])) } td { (s(&b["txs"])) } td.mono { (s(&b["id"])) } td.mono { (short(&s(&b["root"]))) } }
            }
        }
        @if let Some(n) = next { p { a #next href={ "/dashboard/blocks?before=" (n) } { "older blocks" } } }
    };
    html_response(StatusCode::OK, layout("Blocks", body, false))
}

async fn block(State(cx): State<Cx>, Path(height): Path<String>) -> AxResponse {
    let Ok(h) = height.parse::<u64>() else {
        return error_page(StatusCode::BAD_REQUEST, "A block height is a number.");
    };
    let r = read(&cx, move |n| {
        (
            call(n, "plume_getBlock", json!([h])),
            call(n, "plume_blockTransactions", json!([h])),
        )
    })
    .await;
    let (b, txs) = match r {
        Ok((Ok(b), t)) => (b, t.ok()),
        Ok((Err(e), _)) => return api_error(&e),
        Err(r) => return r,
    };
    let body = html! {
        table #block {
            @for k in ["height", "hash", "view", "epoch", "parent", "proposer", "state_root", "state_root_height", "state_root_after"] {
                tr { th { (k) } td.mono { (s(&b[k])) } }
            }
        }
        h2 { "Batches" }
        ul { @for d in b["batches"].as_array().map_or(&[][..], |v| v) { li.mono { (s(d)) } } }
        @if let Some(t) = txs {
            h2 { "Transactions" }
            table #txs {
                tr { th { "#" } th { "hash" } th { "status" } }
                @for x in t["transactions"].as_array().map_or(&[][..], |v| v) {
                    tr { td { (s(&x["index"])) } td { (tx_link(&x["hash"])) } td { (s(&x["status"])) } }
                }
            }
        }
        details { summary { "block bytes" } pre { (s(&b["block_bytes"])) } }
    };
    html_response(StatusCode::OK, layout(&format!("Block {h}"), body, false))
}

async fn alerts(State(cx): State<Cx>, Query(q): Q) -> AxResponse {
    let before = q.get("before").cloned();
    let r = read(&cx, move |n| {
        let mut o = json!({"limit": PAGE_ROWS});
        if let Some(b) = before {
            o["before"] = json!(b);
        }
        call(n, "plume_recentAlerts", json!([o]))
    })
    .await;
    let v = match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return api_error(&e),
        Err(r) => return r,
    };
    let body = html! {
        p { (s(&v["total"])) " alerts in all; newest first." }
        (alerts_table(v["alerts"].as_array().map_or(&[][..], |v| v)))
        @if let Some(n) = v["next"].as_str() { p { a #next href={ "/dashboard/alerts?before=" (n) } { "older alerts" } } }
    };
    html_response(StatusCode::OK, layout("Alerts", body, false))
}

/// The account and its top counterparties as a star: one node per
/// counterparty, an edge as wide as the log of what was exchanged, red
/// for money out, green for money in.
fn graph(me: &str, cps: &[Value]) -> Markup {
    let (w, h) = (720.0f64, 460.0f64);
    let (cx, cy, r) = (w / 2.0, h / 2.0, 180.0);
    let total = |c: &Value| {
        let n = |k: &str| {
            c[k].as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (n("sent"), n("received"))
    };
    let max = cps
        .iter()
        .map(|c| {
            let (a, b) = total(c);
            (a + b).max(1.0).ln()
        })
        .fold(1.0f64, f64::max);
    let n = cps.len().max(1) as f64;
    html! {
        svg #flow-graph width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" {
            title { "counterparties of " (me) }
            @for (i, c) in cps.iter().enumerate() {
                @let angle = std::f64::consts::TAU * i as f64 / n - std::f64::consts::FRAC_PI_2;
                @let (x, y) = (cx + r * angle.cos(), cy + r * angle.sin());
                @let (sent, received) = total(c);
                @let width = 1.0 + 7.0 * (sent + received).max(1.0).ln() / max;
                @let color = if sent >= received { "#c0392b" } else { "#27ae60" };
                @let acct = s(&c["account"]);
                line.edge data-account=(acct) x1=(format!("{cx:.1}")) y1=(format!("{cy:.1}")) x2=(format!("{x:.1}")) y2=(format!("{y:.1}")) stroke=(color) stroke-width=(format!("{width:.1}")) {
                    title { "sent " (s(&c["sent"])) ", received " (s(&c["received"])) " in " (s(&c["flows"])) " flows (asset " (short(&s(&c["asset"]))) ")" }
                }
                a href={ "/dashboard/account/" (acct) } {
                    circle.counterparty data-account=(acct) cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="14" fill="#fff" stroke="#1f2a44" {}
                    text x=(format!("{x:.1}")) y=(format!("{:.1}", y + 30.0)) text-anchor="middle" font-size="11" { (short(&acct)) }
                }
            }
            circle #me cx=(cx) cy=(cy) r="22" fill="#1f2a44" {}
            text x=(cx) y=(cy + 40.0) text-anchor="middle" font-size="12" font-weight="bold" { (short(me)) }
        }
    }
}

async fn account(State(cx): State<Cx>, Path(address): Path<String>, Query(q): Q) -> AxResponse {
    let before = q.get("before").cloned();
    let a = address.clone();
    let r = read(&cx, move |n| {
        let mut o = json!({"limit": PAGE_ROWS});
        if let Some(b) = &before {
            o["before"] = json!(b);
        }
        (
            call(n, "plume_getAccount", json!([a])),
            call(
                n,
                "plume_counterparties",
                json!([a, {"limit": GRAPH_NODES}]),
            ),
            call(n, "plume_accountFlows", json!([a, o])),
            call(n, "plume_party", json!([a])).ok(),
        )
    })
    .await;
    let (acct, cps, flows, party) = match r {
        Ok((Ok(a), c, f, p)) => (a, c, f, p),
        Ok((Err(e), _, _, _)) => return api_error(&e),
        Err(r) => return r,
    };
    let me = s(&acct["address"]);
    let body = html! {
        div.cards {
            div.card { "balance" b #balance { (s(&acct["balance"])) } }
            div.card { "sequence" b { (s(&acct["sequence"])) } }
            div.card { "at height" b { (s(&acct["height"])) } }
            @if let Some(p) = &party {
                div.card { "jurisdiction" b #jurisdiction { (s(&p["party"]["jurisdiction"])) } }
                div.card { "identity" b #identity title=(s(&p["identity"])) { (short(&s(&p["identity"]))) } }
                div.card { "accounts of the identity" b { (p["accounts"].as_array().map_or(0, Vec::len)) } }
            } @else {
                div.card { "identity" b #identity { "none registered" } }
            }
        }
        p.mono { (me) }
        details #state-proof {
            summary { "state proof (against root " (short(&s(&acct["state_root"]))) " at height " (s(&acct["height"])) ")" }
            table {
                tr { th { "state root" } td.mono { (s(&acct["state_root"])) } }
                tr { th { "key" } td.mono { (s(&acct["key"])) } }
                tr { th { "value" } td.mono { (s(&acct["value"])) } }
            }
            pre { (s(&acct["state_proof"])) }
        }
        @match &cps {
            Ok(c) => {
                @let list = c["counterparties"].as_array().map_or(&[][..], |v| v);
                h2 { "Counterparties (top " (list.len()) ")" }
                @if list.is_empty() { p { "No flows to or from this account." } } @else { (graph(&me, list)) }
            },
            Err(e) => { p { (e.message) } },
        }
        @if let Ok(f) = &flows {
            h2 { "Flows, newest first" }
            (flows_table(f["flows"].as_array().map_or(&[][..], |v| v), Some(&me)))
            @if let Some(n) = f["next"].as_str() {
                p { a #next href={ "/dashboard/account/" (me) "?before=" (n) } { "older flows" } }
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout(&format!("Account {}", short(&me)), body, false),
    )
}

async fn tx(State(cx): State<Cx>, Path(hash): Path<String>) -> AxResponse {
    let r = read(&cx, move |n| call(n, "plume_trace", json!([hash]))).await;
    let v = match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return api_error(&e),
        Err(r) => return r,
    };
    let ix = &v["index"];
    let t = &v["transaction"];
    let pretty = |x: &Value| serde_json::to_string_pretty(x).unwrap_or_default();
    let body = html! {
        table #trace {
            tr { th { "hash" } td.mono { (s(&t["hash"])) } }
            tr { th { "block" } td { (block_link(&ix["height"])) " #" (s(&ix["index"])) } }
            tr { th { "status" } td #status { (s(&ix["status"])) } }
            tr { th { "reason code" } td { (s(&ix["reason"])) } }
            tr { th { "fee paid" } td { (s(&ix["fee_paid"])) } }
        }
        h2 { "Flows" }
        (flows_table(ix["flows"].as_array().map_or(&[][..], |v| v), None))
        h2 { "Compliance" }
        @let verdicts = v["compliance"].as_array().map_or(&[][..], |v| v);
        @if verdicts.is_empty() {
            p #compliance { "No rule stopped or flagged this transaction." }
        } @else {
            table #compliance {
                tr { th { "rule" } th { "verdict" } th { "code" } th { "input hash" } }
                @for e in verdicts {
                    tr.verdict {
                        td { (s(&e["rule_id"])) }
                        td { @if e["flagged"].as_bool() == Some(true) { "flagged" } @else { "stopped" } }
                        td { (s(&e["code"])) }
                        td.mono { (short(&s(&e["input_hash"]))) }
                    }
                }
            }
        }
        @if let Some(ps) = v["parties"].as_object().filter(|m| !m.is_empty()) {
            h2 { "Parties" }
            table #parties {
                tr { th { "account" } th { "identity" } th { "jurisdiction" } }
                @for (a, p) in ps {
                    tr { td { (account_link(&json!(a))) } td.mono { (short(&s(&p["identity"]))) } td { (s(&p["jurisdiction"])) } }
                }
            }
        }
        h2 { "Receipt" }
        pre #receipt { (pretty(&t["receipt"])) }
        h2 { "Finality proof" }
        p { "Checkable offline against the genesis validator set: " code { "plume query tx " (s(&t["hash"])) " --verify-with genesis.json" } "." }
        pre #finality-proof { (pretty(&t["finality_proof"])) }
    };
    html_response(StatusCode::OK, layout("Transaction", body, false))
}

async fn volume(State(cx): State<Cx>) -> AxResponse {
    let r = read(&cx, |n| {
        let top = call(n, "plume_status", json!([]))
            .ok()
            .and_then(|s| s["index_height"].as_u64())
            .unwrap_or(0);
        let from = top.saturating_sub(10_000).max(1);
        (
            from,
            top,
            call(n, "plume_volume", json!([{"from": from, "to": top}])),
            call(
                n,
                "plume_jurisdictionVolume",
                json!([{"from": from, "to": top}]),
            ),
        )
    })
    .await;
    let (from, to, v, jv) = match r {
        Ok((f, t, Ok(v), Ok(jv))) => (f, t, v, jv),
        Ok((_, _, Err(e), _)) | Ok((_, _, _, Err(e))) => return api_error(&e),
        Err(r) => return r,
    };
    let jur = |v: &Value| {
        let j = s(v);
        if j.is_empty() {
            "unregistered".to_string()
        } else {
            j
        }
    };
    let body = html! {
        p { "Blocks " (from) " to " (to) "." }
        table #volume {
            tr { th { "asset" } th { "transferred" } th { "flows" } th { "issued" } th { "burned" } }
            @for a in v["assets"].as_array().map_or(&[][..], |v| v) {
                tr { td.mono { (s(&a["asset"])) } td { (s(&a["transferred"])) } td { (s(&a["flows"])) } td { (s(&a["issued"])) } td { (s(&a["burned"])) } }
            }
        }
        h2 { "By jurisdiction" }
        p { "By the registered identities of the debited and credited accounts (the compliance registry, as indexed)." }
        table #jurisdiction-volume {
            tr { th { "asset" } th { "from" } th { "to" } th { "transferred" } th { "flows" } }
            @for a in jv["volumes"].as_array().map_or(&[][..], |v| v) {
                tr.jurisdiction data-from=(s(&a["from"])) data-to=(s(&a["to"])) {
                    td.mono { (short(&s(&a["asset"]))) } td { (jur(&a["from"])) } td { (jur(&a["to"])) } td { (s(&a["transferred"])) } td { (s(&a["flows"])) }
                }
            }
        }
    };
    html_response(StatusCode::OK, layout("Volume", body, false))
}

fn redirect(to: &str) -> AxResponse {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn search(State(cx): State<Cx>, Query(q): Q) -> AxResponse {
    let q = q.get("q").map(|v| v.trim().to_string()).unwrap_or_default();
    if !q.is_empty() && q.len() <= 20 && q.bytes().all(|b| b.is_ascii_digit()) {
        return redirect(&format!("/dashboard/block/{q}"));
    }
    let hex = q.strip_prefix("0x").unwrap_or(&q).to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Search for a block height, a transaction hash or an address (64 hex digits).",
        );
    }
    let h = hex.clone();
    let is_tx = read(&cx, move |n| call(n, "plume_trace", json!([h])).is_ok()).await;
    match is_tx {
        Ok(true) => redirect(&format!("/dashboard/tx/{hex}")),
        Ok(false) => redirect(&format!("/dashboard/account/{hex}")),
        Err(r) => r,
    }
}

async fn login(State(cx): State<Cx>, Query(q): Q) -> AxResponse {
    let Some(want) = &cx.limits.token else {
        return redirect("/dashboard");
    };
    let given = q.get("token").map(String::as_str).unwrap_or("");
    if !super::auth::token_eq(given, want) {
        cx.node.shed("api_unauthorized");
        return error_page(StatusCode::UNAUTHORIZED, "Wrong access token.");
    }
    let next = q
        .get("next")
        .filter(|n| n.starts_with("/dashboard") && !n.contains("//"))
        .map_or("/dashboard", String::as_str);
    let mut r = redirect(next);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{TOKEN_COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_counts_the_window_after_its_first_block() {
        let b = |h: u64, txs: u64, t: u64| json!({"height": h, "txs": txs, "seen_ms": t});
        // Newest first: 300 txs over the 2 s after block 1.
        let list = vec![b(3, 100, 3_000), b(2, 200, 2_000), b(1, 999, 1_000)];
        let tps = throughput(&list).unwrap();
        assert!((tps - 150.0).abs() < 1e-9, "{tps}");
        // Blocks older than 10 s before the newest are not in the window.
        let list = vec![b(3, 100, 30_000), b(2, 200, 29_000), b(1, 999, 1_000)];
        assert!((throughput(&list).unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(throughput(&[b(1, 5, 1)]), None);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = layout("<script>", html! { p { (s(&json!("<b>x</b>"))) } }, false).into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"), "{page}");
    }

    #[test]
    fn the_graph_draws_one_node_and_edge_per_counterparty() {
        let cps: Vec<Value> = (0..3)
            .map(|i| json!({"account": format!("{i:064x}"), "asset": "00", "sent": "10", "received": "0", "flows": 1}))
            .collect();
        let svg = graph(&format!("{:064x}", 9), &cps).into_string();
        assert_eq!(svg.matches("class=\"counterparty\"").count(), 3, "{svg}");
        assert_eq!(svg.matches("class=\"edge\"").count(), 3, "{svg}");
        assert!(svg.contains(&format!("/dashboard/account/{:064x}", 2)));
    }
}
