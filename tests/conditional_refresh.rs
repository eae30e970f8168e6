//! Conditional refresh against a real HTTP origin on loopback: a refresh
//! sends `If-None-Match` with the `ETag` the cached value carries, the
//! origin answers `304 Not Modified`, and the value is kept with new
//! horizons (`herdcache::previous`, `Previous::not_modified`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait_until;
use herdcache::testing::{self, ManualClock};
use herdcache::{cached, Served};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the origin saw: each request's `If-None-Match` (if any).
#[derive(Default)]
struct Origin {
    requests: Mutex<Vec<Option<String>>>,
    /// The document's version: its `ETag` is `"v<version>"`.
    version: AtomicUsize,
}

/// An HTTP/1.1 origin serving one document with a strong `ETag`, answering
/// `304` when `If-None-Match` names the current one.
async fn start_origin() -> (String, Arc<Origin>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let origin = Arc::new(Origin::default());
    let state = origin.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut if_none_match = None;
                loop {
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("if-none-match") {
                            if_none_match = Some(value.trim().to_string());
                        }
                    }
                }
                state.requests.lock().unwrap().push(if_none_match.clone());
                let version = state.version.load(SeqCst);
                let etag = format!("\"v{version}\"");
                let response = if if_none_match.as_deref() == Some(etag.as_str()) {
                    format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                } else {
                    let body = format!("rates version {version}");
                    format!(
                        "HTTP/1.1 200 OK\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.get_mut().write_all(response.as_bytes()).await;
            });
        }
    });
    (address, origin)
}

/// A GET over one connection: the status, the `ETag` and the body.
async fn get(address: &str, if_none_match: Option<&str>) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let condition = if_none_match
        .map(|etag| format!("If-None-Match: {etag}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET /rates HTTP/1.1\r\nHost: {address}\r\n{condition}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let etag = head
        .lines()
        .find_map(|line| line.strip_prefix("ETag: "))
        .unwrap_or_default()
        .to_string();
    Ok((status, etag, body.to_string()))
}

#[derive(Clone, Debug, PartialEq)]
struct Rates {
    etag: String,
    body: String,
}

/// The paid third-party API, cached with swr: a refresh asks the origin
/// whether the document changed since the `ETag` it holds.
#[cached(ttl = "60s", swr = "1h", key = origin)]
async fn rates(origin: &str) -> Result<Rates, std::io::Error> {
    let previous = herdcache::previous::<Rates>();
    let if_none_match = previous.as_ref().map(|p| p.value().etag.clone());
    let (status, etag, body) = get(origin, if_none_match.as_deref()).await?;
    match (status, previous) {
        (304, Some(previous)) => Ok(previous.not_modified()),
        (200, _) => Ok(Rates { etag, body }),
        (status, _) => Err(std::io::Error::other(format!("origin answered {status}"))),
    }
}

#[tokio::test]
async fn a_refresh_the_origin_answers_304_keeps_the_value_with_new_horizons() {
    let (origin, seen) = start_origin().await;
    let clock = ManualClock::new();
    testing::isolate_with_clock(clock.clone(), async {
        let first = rates_entry(&origin).await.unwrap();
        assert_eq!(first.value().body, "rates version 0");
        assert_eq!(first.value().etag, "\"v0\"");
        assert_eq!(*seen.requests.lock().unwrap(), vec![None]);

        // Past freshness: served stale at once while one refresh asks the
        // origin, conditionally.
        clock.advance(Duration::from_secs(61));
        let stale = rates_entry(&origin).await.unwrap();
        assert_eq!(stale.served(), Served::Stale);
        wait_until("the refresh landed", || {
            rates_cache().stats().not_modified == 1
        })
        .await;
        assert_eq!(
            *seen.requests.lock().unwrap(),
            vec![None, Some("\"v0\"".to_string())],
            "the origin was called once more, with the ETag the value carries"
        );
        // The same value, fresh again for a whole ttl from the refresh.
        let kept = rates_entry(&origin).await.unwrap();
        assert_eq!(kept.served(), Served::Hit);
        assert_eq!(kept.value(), first.value());
        assert_eq!(kept.fresh_for(), Duration::from_secs(60));
        assert_eq!(kept.age(), Duration::ZERO);
        let stats = rates_cache().stats();
        assert_eq!(
            (stats.loads, stats.refreshes, stats.not_modified),
            (2, 1, 1)
        );

        // The document changes: the next refresh gets a 200 and the new value.
        seen.version.store(1, SeqCst);
        clock.advance(Duration::from_secs(61));
        let _ = rates(&origin).await.unwrap();
        wait_until("the second refresh landed", || {
            rates_cache().stats().refreshes == 2 && rates_cache().stats().loads == 3
        })
        .await;
        assert_eq!(rates(&origin).await.unwrap().body, "rates version 1");
        assert_eq!(rates_cache().stats().not_modified, 1);
        assert_eq!(
            seen.requests.lock().unwrap()[2].as_deref(),
            Some("\"v0\""),
            "asked with the ETag it held"
        );
    })
    .await;
}

#[tokio::test]
async fn outside_a_refresh_there_is_no_previous_value() {
    assert!(herdcache::previous::<Rates>().is_none());
}
