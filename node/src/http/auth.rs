//! The API's access token (`[api] token_file`): a request carries it as
//! `Authorization: Bearer <token>` or, from a browser that logged in to the
//! dashboard, as the `plume_token` cookie. Compared in constant time.

use hyper::body::Incoming;
use hyper::Request;

/// The dashboard's login cookie.
pub const TOKEN_COOKIE: &str = "plume_token";

/// Equal strings, compared in time that depends only on their lengths.
pub fn token_eq(given: &str, want: &str) -> bool {
    let (a, b) = (given.as_bytes(), want.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request carries the access token.
pub fn authorized(req: &Request<Incoming>, want: &str) -> bool {
    let h = req.headers();
    let bearer = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| token_eq(t.trim(), want));
    bearer
        || h.get_all("cookie").iter().any(|v| {
            v.to_str().ok().is_some_and(|c| {
                c.split(';').any(|kv| {
                    kv.trim()
                        .strip_prefix(TOKEN_COOKIE)
                        .and_then(|r| r.strip_prefix('='))
                        .is_some_and(|t| token_eq(t, want))
                })
            })
        })
}
