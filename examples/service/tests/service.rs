//! The service over real HTTP: each test serves the app in-process on a
//! free loopback port (the fleet test runs two `service` processes against
//! a redis-server of its own). herdcache's caches are per process, so the
//! in-process tests each touch users of their own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use service::{Config, Profile};

/// The config of an in-process test: a small in-memory database, no
/// simulated latency, no Redis.
fn config() -> Config {
    Config {
        addr: "127.0.0.1:0".parse().expect("an address"),
        seed_users: 400,
        db_latency: Duration::ZERO,
        db_timeout: Duration::from_millis(200),
        redis_url: None,
        ..Config::default()
    }
}

/// Serves the app for `config` on a free loopback port; its base URL.
async fn start(config: Config) -> String {
    // herdcache reads HERDCACHE_REDIS_URL by itself: in process, a tier
    // from the environment would be a server this test did not start.
    assert!(
        std::env::var_os("HERDCACHE_REDIS_URL").is_none(),
        "unset HERDCACHE_REDIS_URL: these tests start their own redis-server"
    );
    let router = service::app(&config).await.expect("the app starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Asserts a problem+json answer with `status`; its body.
async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let body: Value = response.json().await.expect("a problem body");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["detail"].is_string(), "{body}");
    body
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.json().await.expect("JSON")
}

/// `PUT /users/{id}` renaming the user, before its headers.
fn put_request(
    client: &reqwest::Client,
    base: &str,
    id: u32,
    name: &str,
) -> reqwest::RequestBuilder {
    client
        .put(format!("{base}/users/{id}"))
        .json(&serde_json::json!({"name": name, "email": format!("{id}@example.org")}))
}

async fn put_user(
    client: &reqwest::Client,
    base: &str,
    id: u32,
    name: &str,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut request = put_request(client, base, id, name);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    request.send().await.expect("PUT")
}

async fn pay(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    user: u32,
    amount: i64,
) -> reqwest::Response {
    client
        .post(format!("{base}/payments"))
        .header("idempotency-key", key)
        .json(&serde_json::json!({"user_id": user, "amount_cents": amount}))
        .send()
        .await
        .expect("POST /payments")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_seen_by_the_next_get_at_once() {
    let base = start(config()).await;
    let client = client();
    let first = client.get(format!("{base}/users/11")).send().await.unwrap();
    assert_eq!(header(&first, "x-cache").as_deref(), Some("loaded"));
    let before: Value = first.json().await.unwrap();
    assert_eq!(before["name"], "User 11");
    // Warm: the second read is a hit.
    let hit = client.get(format!("{base}/users/11")).send().await.unwrap();
    assert_eq!(header(&hit, "x-cache").as_deref(), Some("hit"));

    let put = put_user(&client, &base, 11, "Ada", None).await;
    assert_eq!(put.status(), StatusCode::OK);
    let after = get_json(&client, &format!("{base}/users/11")).await;
    assert_eq!(after["name"], "Ada");
    assert_eq!(after["version"], 2);

    // The org's member list too (users 1..=50 are org 1).
    let members = get_json(&client, &format!("{base}/orgs/1/members")).await;
    assert!(members["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == 11 && m["name"] == "Ada"));
    put_user(&client, &base, 11, "Ada Lovelace", None).await;
    let members = get_json(&client, &format!("{base}/orgs/1/members")).await;
    assert!(members["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == 11 && m["name"] == "Ada Lovelace"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_with_a_stale_if_match_is_412() {
    let base = start(config()).await;
    let client = client();
    let first = client.get(format!("{base}/users/12")).send().await.unwrap();
    let etag = header(&first, "etag").expect("an ETag");

    let put = put_user(&client, &base, 12, "Grace", Some(&etag)).await;
    assert_eq!(put.status(), StatusCode::OK);
    let new_etag = header(&put, "etag").expect("the new ETag");
    assert_ne!(new_etag, etag);

    // The old tag is stale now.
    let stale = put_user(&client, &base, 12, "Mallory", Some(&etag)).await;
    problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let user = get_json(&client, &format!("{base}/users/12")).await;
    assert_eq!(user["name"], "Grace");

    // The GET's ETag is the PUT's, and it and `*` match.
    let get = client.get(format!("{base}/users/12")).send().await.unwrap();
    assert_eq!(header(&get, "etag").as_deref(), Some(new_etag.as_str()));
    let put = put_user(&client, &base, 12, "Grace H.", Some(&new_etag)).await;
    assert_eq!(put.status(), StatusCode::OK);
    let put = put_user(&client, &base, 12, "Grace Hopper", Some("*")).await;
    assert_eq!(put.status(), StatusCode::OK);

    // If-None-Match on a write: `*` (the user exists) and the current
    // tag fail it; another tag passes.
    let current = header(&put, "etag").expect("the ETag");
    for tag in ["*", current.as_str()] {
        let refused = put_request(&client, &base, 12, "Mallory")
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        problem(refused, StatusCode::PRECONDITION_FAILED).await;
    }
    let passed = put_request(&client, &base, 12, "Grace B. Hopper")
        .header("if-none-match", "\"another\"")
        .send()
        .await
        .unwrap();
    assert_eq!(passed.status(), StatusCode::OK);
    let user = get_json(&client, &format!("{base}/users/12")).await;
    assert_eq!(user["name"], "Grace B. Hopper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_with_the_current_etag_is_304() {
    let base = start(config()).await;
    let client = client();
    let url = format!("{base}/users/18");
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let etag = header(&first, "etag").expect("an ETag");
    let cache_control = header(&first, "cache-control").expect("Cache-Control");
    assert!(
        cache_control.starts_with("private, max-age="),
        "{cache_control}"
    );
    assert!(
        cache_control.contains("stale-while-revalidate=30"),
        "{cache_control}"
    );
    assert!(
        cache_control.contains("stale-if-error=600"),
        "{cache_control}"
    );
    // The same directives, max-age counting down.
    let directives = |value: &str| -> Vec<String> {
        value
            .split(", ")
            .filter(|d| !d.starts_with("max-age="))
            .map(str::to_owned)
            .collect()
    };

    for condition in [
        etag.clone(),
        format!("W/{etag}"),
        "*".to_owned(),
        format!("\"nope\", {etag}"),
    ] {
        let again = client
            .get(&url)
            .header("if-none-match", &condition)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{condition}");
        assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));
        let again_control = header(&again, "cache-control").expect("Cache-Control");
        assert_eq!(directives(&again_control), directives(&cache_control));
        assert!(header(&again, "date").is_some());
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let other = client
        .get(&url)
        .header("if-none-match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    // After a write the old tag no longer matches.
    put_user(&client, &base, 18, "Changed", None).await;
    let changed = client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_payment_charges_once() {
    let base = start(config()).await;
    let client = client();
    let balance_url = format!("{base}/users/13/balance");
    let before = get_json(&client, &balance_url).await["balance_cents"]
        .as_i64()
        .unwrap();

    let first = pay(&client, &base, "order-13", 13, 250).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(header(&first, "idempotent-replayed"), None);
    let first: Value = first.json().await.unwrap();
    let retry = pay(&client, &base, "order-13", 13, 250).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(
        header(&retry, "idempotent-replayed").as_deref(),
        Some("true")
    );
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(first["id"], retry["id"]);

    // One row in the database, one debit, and the cached balance busted.
    let payments = get_json(&client, &format!("{base}/users/13/payments")).await;
    assert_eq!(payments.as_array().unwrap().len(), 1);
    let after = get_json(&client, &balance_url).await["balance_cents"]
        .as_i64()
        .unwrap();
    assert_eq!(after, before - 250);

    // Another body under the same key.
    let other = pay(&client, &base, "order-13", 13, 999).await;
    problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    let payments = get_json(&client, &format!("{base}/users/13/payments")).await;
    assert_eq!(payments.as_array().unwrap().len(), 1);
    // Another user under the same key: refused too, nobody charged again.
    let other_user = pay(&client, &base, "order-13", 14, 250).await;
    problem(other_user, StatusCode::UNPROCESSABLE_ENTITY).await;
    let payments = get_json(&client, &format!("{base}/users/14/payments")).await;
    assert_eq!(payments.as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_charge_once() {
    let base = start(Config {
        // A slower database, so the duplicates overlap the charge.
        db_latency: Duration::from_millis(50),
        ..config()
    })
    .await;
    let client = client();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move { pay(&client, &base, "double-click-14", 14, 100).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut replayed = 0;
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        replayed += usize::from(header(&response, "idempotent-replayed").is_some());
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one payment: {ids:?}");
    assert_eq!(replayed, 19);
    let payments = get_json(&client, &format!("{base}/users/14/payments")).await;
    assert_eq!(payments.as_array().unwrap().len(), 1);
    let balance = get_json(&client, &format!("{base}/users/14/balance")).await;
    assert_eq!(
        balance["balance_cents"].as_i64().unwrap(),
        service::db::SEED_BALANCE_CENTS - 100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_herdcaches_counters_and_load_histogram() {
    let base = start(config()).await;
    let client = client();
    get_json(&client, &format!("{base}/users/15")).await;
    get_json(&client, &format!("{base}/users/15")).await;
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("herdcache_hits_total{") && l.contains("name=\"service.user\"")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("herdcache_load_duration_seconds_bucket{")
                && l.contains("name=\"service.user\"")),
        "{text}"
    );
    assert!(text.contains("service_db_queries_total"), "{text}");

    let debug = get_json(&client, &format!("{base}/debug/cache")).await;
    assert!(debug["db_queries"].as_u64().unwrap() >= 1);
    assert!(debug["functions"]["service.user"]["hits"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_user_is_served_by_fail_safe_while_the_database_fails() {
    // No swr: past its ttl the next call loads, and fail-safe answers it.
    let base = start(Config {
        profile: Profile::ShortNoSwr,
        ..config()
    })
    .await;
    let client = client();
    let warm = get_json(&client, &format!("{base}/users/16")).await;
    let warm_hang = get_json(&client, &format!("{base}/users/19")).await;

    for (mode, id, warm) in [("fail", 16, warm), ("hang", 19, warm_hang)] {
        let set = client
            .post(format!("{base}/admin/db-fault"))
            .json(&serde_json::json!({ "mode": mode }))
            .send()
            .await
            .unwrap();
        assert_eq!(set.status(), StatusCode::OK);
        // Past its freshness, as after its ttl.
        service::cache::user_short_noswr_expire(i64::from(id)).await;
        let before = fail_safe_hits(&client, &base).await;
        let response = client
            .get(format!("{base}/users/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{mode}");
        let how = header(&response, "x-cache");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, warm);
        if mode == "fail" {
            assert_eq!(how.as_deref(), Some("fail_safe"));
            assert!(fail_safe_hits(&client, &base).await > before);
        } else {
            // Hanging past the 100 ms `timeout`: the old value while the
            // load goes on (and fail-safe keeps it when the load fails).
            assert_eq!(how.as_deref(), Some("stale"));
        }

        // A cold user has no fallback: 503 or 504, as problem+json.
        let cold = client
            .get(format!("{base}/users/{}", id + 300))
            .send()
            .await
            .unwrap();
        let status = cold.status();
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT,
            "{status}"
        );
        problem(cold, status).await;
    }
    client
        .post(format!("{base}/admin/db-fault"))
        .json(&serde_json::json!({"mode": "ok"}))
        .send()
        .await
        .unwrap();
    get_json(&client, &format!("{base}/users/316")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_costs_a_warm_user_the_soft_timeout_not_the_hang() {
    // The short profiles' `timeout = "100ms"`: past it, the fallback.
    let base = start(Config {
        profile: Profile::ShortNoSwr,
        db_timeout: Duration::from_secs(20),
        ..config()
    })
    .await;
    let client = client();
    let warm = get_json(&client, &format!("{base}/users/21")).await;
    let set = client
        .post(format!("{base}/admin/db-fault"))
        .json(&serde_json::json!({"mode": "hang"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    // Past its freshness (no swr): the next call loads.
    service::cache::user_short_noswr_expire(21).await;
    let asked = std::time::Instant::now();
    let response = client.get(format!("{base}/users/21")).send().await.unwrap();
    // Generous: the hang is 20 s, the soft timeout 100 ms.
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(response.status(), StatusCode::OK);
    // The old value while the load goes on: stale, not a failure.
    assert_eq!(header(&response, "x-cache").as_deref(), Some("stale"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, warm);
    client
        .post(format!("{base}/admin/db-fault"))
        .json(&serde_json::json!({"mode": "ok"}))
        .send()
        .await
        .unwrap();
}

async fn fail_safe_hits(client: &reqwest::Client, base: &str) -> u64 {
    let debug = get_json(client, &format!("{base}/debug/cache")).await;
    debug["functions"]["service.user_short_noswr"]["fail_safe_hits"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_problem() {
    let base = start(config()).await;
    let client = client();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    problem(get("/users/abc").await.unwrap(), StatusCode::BAD_REQUEST).await;
    problem(get("/users/0").await.unwrap(), StatusCode::BAD_REQUEST).await;
    problem(get("/users/-3").await.unwrap(), StatusCode::BAD_REQUEST).await;
    problem(
        get("/users/99999999999999999999").await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(get("/users/100000").await.unwrap(), StatusCode::NOT_FOUND).await;
    problem(
        get("/orgs/100000/members").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(get("/nowhere").await.unwrap(), StatusCode::NOT_FOUND).await;
    // What axum answers itself comes as problem+json too.
    problem(get("/users/%FF").await.unwrap(), StatusCode::BAD_REQUEST).await;
    let wrong_method = client
        .delete(format!("{base}/users/17"))
        .send()
        .await
        .unwrap();
    let allow = header(&wrong_method, "allow").expect("Allow kept");
    assert!(allow.contains("GET") && allow.contains("PUT"), "{allow}");
    problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
    let too_large = client
        .put(format!("{base}/users/17"))
        .body(vec![b' '; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    problem(too_large, StatusCode::PAYLOAD_TOO_LARGE).await;

    let bad_json = client
        .put(format!("{base}/users/17"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(bad_json, StatusCode::BAD_REQUEST).await;
    let missing_field = client
        .put(format!("{base}/users/17"))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    problem(missing_field, StatusCode::BAD_REQUEST).await;
    let bad_email = client
        .put(format!("{base}/users/17"))
        .json(&serde_json::json!({"name": "x", "email": "nope"}))
        .send()
        .await
        .unwrap();
    problem(bad_email, StatusCode::UNPROCESSABLE_ENTITY).await;

    let no_key = client
        .post(format!("{base}/payments"))
        .json(&serde_json::json!({"user_id": 17, "amount_cents": 1}))
        .send()
        .await
        .unwrap();
    problem(no_key, StatusCode::BAD_REQUEST).await;
    let bad_key = pay(&client, &base, "two words", 17, 1).await;
    problem(bad_key, StatusCode::BAD_REQUEST).await;
    let negative = pay(&client, &base, "neg-17", 17, -5).await;
    problem(negative, StatusCode::UNPROCESSABLE_ENTITY).await;
    let too_much = pay(&client, &base, "big-17", 17, i64::MAX).await;
    problem(too_much, StatusCode::UNPROCESSABLE_ENTITY).await;
    let bad_fault = client
        .post(format!("{base}/admin/db-fault"))
        .json(&serde_json::json!({"mode": "boom"}))
        .send()
        .await
        .unwrap();
    problem(bad_fault, StatusCode::BAD_REQUEST).await;
}

// ------------------------------------------------------------ the fleet

/// A `service` process, killed when dropped.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn start(database_url: &str, redis_url: &str, namespace: &str) -> Self {
        Self::start_with(&[
            ("DATABASE_URL", database_url),
            ("HERDCACHE_REDIS_URL", redis_url),
            ("HERDCACHE_NAMESPACE", namespace),
        ])
    }

    /// A process alone (in-memory database, no Redis) with `env` on top.
    fn start_with(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_service"));
        command
            .env("SERVICE_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", "sqlite::memory:")
            .env_remove("HERDCACHE_REDIS_URL")
            .env_remove("HERDCACHE_DISABLED")
            .env("SEED_USERS", "100")
            .env("DB_LATENCY_MS", "0")
            .env("RUST_LOG", "warn")
            .env_remove("DB_FAULT")
            .env_remove("CACHE_PROFILE")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the service binary runs");
        let stdout = child.stdout.take().expect("its stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(base) = line.strip_prefix("listening on ") {
                        break base.trim().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("the service exited before listening");
                }
            }
        };
        Instance { child, base }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_on_one_instance_is_seen_by_a_get_on_the_other_within_a_second() {
    let server = herdcache_test_support::RedisServer::start().unwrap();
    let dir = std::env::temp_dir().join(format!("service-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = format!("sqlite://{}?mode=rwc", dir.join("fleet.db").display());
    let namespace = format!("service-test-{}", std::process::id());
    let a = Instance::start(&database_url, &server.url(), &namespace);
    let b = Instance::start(&database_url, &server.url(), &namespace);
    let client = client();

    // Both warm.
    for instance in [&a, &b] {
        let user = get_json(&client, &format!("{}/users/3", instance.base)).await;
        assert_eq!(user["name"], "User 3");
    }
    let put = put_user(&client, &a.base, 3, "Fleet", None).await;
    assert_eq!(put.status(), StatusCode::OK);
    let written = Instant::now();
    loop {
        let user = get_json(&client, &format!("{}/users/3", b.base)).await;
        if user["name"] == "Fleet" {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "instance B still serves {user} a second after the PUT on A"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_herdcache_disabled_every_get_queries_the_database() {
    let instance = Instance::start_with(&[("HERDCACHE_DISABLED", "1")]);
    let client = client();
    let url = format!("{}/users/5", instance.base);
    let queries = |debug: Value| debug["db_queries"].as_u64().unwrap();
    let before = queries(get_json(&client, &format!("{}/debug/cache", instance.base)).await);
    for _ in 0..3 {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-cache").as_deref(), Some("loaded"));
    }
    let after = queries(get_json(&client, &format!("{}/debug/cache", instance.base)).await);
    assert_eq!(after - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_service_gracefully() {
    let mut instance = Instance::start_with(&[]);
    get_json(&client(), &format!("{}/users/1", instance.base)).await;
    let pid = instance.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill(1) runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = instance.child.try_wait().expect("its status") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the service ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(exit.success(), "{exit}");
}

/// An upstream rates API on loopback that answers `304` to a matching
/// `If-None-Match`, and records each request's `If-None-Match`.
#[derive(Clone, Default)]
struct RatesUpstream {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
    not_modified: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const EUR_TAG: &str = "\"eur-rev-1\"";

async fn start_rates_upstream() -> (String, RatesUpstream) {
    use axum::http::{header, HeaderMap, StatusCode as Status};
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering;

    let upstream = RatesUpstream::default();
    let state = upstream.clone();
    let router = axum::Router::new().route(
        "/rates/{currency}",
        axum::routing::get(
            move |axum::extract::Path(currency): axum::extract::Path<String>,
                  headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let inm = headers
                        .get(header::IF_NONE_MATCH)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    state.seen.lock().unwrap().push(inm.clone());
                    if currency != "EUR" {
                        return Status::NOT_FOUND.into_response();
                    }
                    if inm.as_deref() == Some(EUR_TAG) {
                        state.not_modified.fetch_add(1, Ordering::SeqCst);
                        return (Status::NOT_MODIFIED, [(header::ETAG, EUR_TAG)]).into_response();
                    }
                    (
                        [(header::ETAG, EUR_TAG)],
                        axum::Json(serde_json::json!({"currency": "EUR", "per_usd": 0.92})),
                    )
                        .into_response()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_refresh_keeps_the_rate_and_asks_the_upstream_once_with_its_etag() {
    let (upstream_url, upstream) = start_rates_upstream().await;
    let base = start(Config {
        rates_origin: Some(upstream_url),
        ..config()
    })
    .await;
    let client = client();

    let first = client
        .get(format!("{base}/rates/eur"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-cache").as_deref(), Some("loaded"));
    let cache_control = header(&first, "cache-control").expect("Cache-Control");
    assert!(
        cache_control.starts_with("public, max-age="),
        "{cache_control}"
    );
    let etag = header(&first, "etag").expect("an ETag");
    let rate: Value = first.json().await.unwrap();
    assert_eq!(rate["per_usd"], 0.92);
    assert_eq!(rate["upstream_etag"], EUR_TAG);
    assert_eq!(*upstream.seen.lock().unwrap(), vec![None]);

    // The refresh revalidates: one request, with the held value's ETag,
    // answered 304, and the value kept.
    let refreshed = client
        .post(format!("{base}/admin/rates/EUR/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(refreshed, rate);
    assert_eq!(
        *upstream.seen.lock().unwrap(),
        vec![None, Some(EUR_TAG.to_owned())]
    );
    assert_eq!(
        upstream
            .not_modified
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // Served from the cache afterwards, unchanged, with the same validator.
    let again = client
        .get(format!("{base}/rates/EUR"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&again, "x-cache").as_deref(), Some("hit"));
    assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));
    assert_eq!(again.json::<Value>().await.unwrap(), rate);
    assert_eq!(upstream.seen.lock().unwrap().len(), 2);

    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("herdcache_not_modified_total{")
                && l.contains("name=\"service.rate\"")
                && l.ends_with(" 1")),
        "{text}"
    );

    // A currency the upstream does not know is its 404; a malformed one
    // never reaches it; without an upstream, 503.
    let unknown = client
        .get(format!("{base}/rates/XYZ"))
        .send()
        .await
        .unwrap();
    problem(unknown, StatusCode::NOT_FOUND).await;
    let bad = client
        .get(format!("{base}/rates/E1R"))
        .send()
        .await
        .unwrap();
    problem(bad, StatusCode::BAD_REQUEST).await;
    assert_eq!(upstream.seen.lock().unwrap().len(), 3);
    let without = start(config()).await;
    let unset = client
        .get(format!("{without}/rates/EUR"))
        .send()
        .await
        .unwrap();
    problem(unset, StatusCode::SERVICE_UNAVAILABLE).await;
}
