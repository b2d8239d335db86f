//! The dashboard's HTTP side (axum): the page (compiled in), a snapshot, and Server-Sent Events. Read-only: GET
//! only, nothing changes anything. Every answer carries a strict Content-Security-Policy (scripts and styles only
//! from this server, no inline code, no frames, nothing fetched from elsewhere). With a token, every request must
//! bring it (`Authorization: Bearer`, the cookie a first `/?token=` visit sets, or `?token=`), compared in constant
//! time; without one the server only listens on a loopback address (checked at start).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::broadcast;

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const COOKIE: &str = "ticklake_dashboard";

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// What every handler reads.
pub struct Shared {
    pub topic: String,
    pub feed: std::sync::Mutex<super::feed::Feed>,
    /// The lake panel's newest JSON (`null` without `--to`).
    pub lake: std::sync::Mutex<Value>,
    /// The pipeline metrics panel's newest JSON (`null` without `--metrics`).
    pub metrics: std::sync::Mutex<Value>,
    /// Events for open pages: (event name, JSON data).
    pub events: broadcast::Sender<(&'static str, Arc<String>)>,
    /// SHA-256 of the token, when one is required.
    pub token: Option<[u8; 32]>,
    /// Ends every open page's stream, so a stop is not held up by pages left open.
    pub stop: crate::shutdown::Shutdown,
}

impl Shared {
    fn snapshot(&self) -> String {
        let mut snap = self.feed.lock().expect("feed lock").snapshot();
        snap["topic"] = Value::from(self.topic.clone());
        snap["lake"] = self.lake.lock().expect("lake lock").clone();
        snap["metrics"] = self.metrics.lock().expect("metrics lock").clone();
        snap.to_string()
    }
}

pub fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.trim().as_bytes()).into()
}

/// The token a request brings, if any: the Authorization header, the cookie, or `?token=`.
fn presented(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(bearer) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()?.strip_prefix("Bearer ")) {
        return Some(bearer.to_string());
    }
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    for c in cookies.flat_map(|v| v.split(';')) {
        if let Some(t) = c.trim().strip_prefix(&format!("{COOKIE}=")) {
            return Some(t.to_string());
        }
    }
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(|t| percent_encoding::percent_decode_str(t).decode_utf8_lossy().into_owned())
}

/// Whether `given` is the token, in constant time (digests of equal length, compared with `subtle`).
pub fn token_matches(want: &[u8; 32], given: &str) -> bool {
    use subtle::ConstantTimeEq;
    digest(given).ct_eq(want).into()
}

async fn guard(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let query = req.uri().query().map(str::to_string);
    let mut set_cookie = None;
    if let Some(want) = &s.token {
        match presented(req.headers(), query.as_deref()) {
            Some(t) if token_matches(want, &t) => {
                if query.as_deref().is_some_and(|q| q.contains("token=")) {
                    // A first visit by link: keep the token in a cookie the page's scripts cannot read.
                    set_cookie = Some(format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/"));
                }
            }
            _ => {
                let mut r =
                    (StatusCode::UNAUTHORIZED, "a token is required: open /?token=... or send Authorization: Bearer\n")
                        .into_response();
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return secure(r);
            }
        }
    }
    let mut r = next.run(req).await;
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    secure(r)
}

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    r
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, kind)], body)
}

async fn snapshot(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], s.snapshot())
}

/// The page's live feed: a snapshot first, then every update; a page too slow to keep up gets a new snapshot.
async fn events(State(s): State<Arc<Shared>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.events.subscribe();
    let first = Event::default().event("snapshot").data(s.snapshot());
    let rest = futures_util::stream::unfold((rx, s.clone()), |(mut rx, s)| async move {
        let ev = match rx.recv().await {
            Ok((name, data)) => Event::default().event(name).data(data.as_str()),
            Err(broadcast::error::RecvError::Lagged(_)) => Event::default().event("snapshot").data(s.snapshot()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), (rx, s)))
    });
    let stop = s.stop.clone();
    let stream = futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(first) }), rest);
    let stream = futures_util::StreamExt::take_until(stream, async move { stop.wait().await });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/snapshot", get(snapshot))
        .route("/api/events", get(events))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_a_header_a_cookie_or_the_query_and_compare_by_digest() {
        let want = digest("s3cret\n");
        assert!(token_matches(&want, "s3cret"));
        assert!(!token_matches(&want, "s3cre"));
        assert!(!token_matches(&want, ""));
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h, Some("a=1&token=s3%63ret")), Some("s3cret".into()));
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; ticklake_dashboard=abc"));
        assert_eq!(presented(&h, None), Some("abc".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(presented(&h, None), Some("xyz".into()));
        assert_eq!(presented(&HeaderMap::new(), None), None);
    }
}
