//! Loads and refreshes are traced: a span each, with the function's name,
//! the outcome, the duration and the callers that waited; an event when a
//! refresh fails or fail-safe answers. Read back through a test subscriber.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herdcache_runtime::{
    BackgroundLoad, CacheConfig, Clock, FailureShare, FnCache, LoadHooks, ManualClock,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span's or an event's fields, as text.
type FieldMap = BTreeMap<String, String>;

/// What the subscriber saw: closed spans with their fields, and events.
#[derive(Clone, Default)]
struct Seen {
    spans: Arc<Mutex<Vec<(String, FieldMap)>>>,
    events: Arc<Mutex<Vec<FieldMap>>>,
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        attrs.record(&mut fields);
        ctx.span(id).unwrap().extensions_mut().insert(fields.0);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut extensions = span.extensions_mut();
        let fields = extensions.get_mut::<BTreeMap<String, String>>().unwrap();
        let mut more = Fields(std::mem::take(fields));
        values.record(&mut more);
        *fields = more.0;
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        fields
            .0
            .insert("target".into(), event.metadata().target().into());
        self.events.lock().unwrap().push(fields.0);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let mut fields = span
            .extensions()
            .get::<BTreeMap<String, String>>()
            .cloned()
            .unwrap_or_default();
        fields.insert("target".into(), span.metadata().target().into());
        self.spans
            .lock()
            .unwrap()
            .push((span.name().to_owned(), fields));
    }
}

#[test]
fn loads_refreshes_and_fail_safe_answers_are_traced_without_keys() {
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let clock = ManualClock::new();
            let cache: &'static FnCache<String, u64> = Box::leak(Box::new(FnCache::new(
                CacheConfig::new("users.get", Duration::from_secs(60))
                    .swr(Duration::from_secs(30))
                    .fail_safe(Duration::from_secs(600))
                    .clock(Clock::Manual(clock.clone())),
            )));
            let hooks = || LoadHooks::new(FailureShare::<String>::by_clone());
            let key = "secret-user@example.com".to_owned();
            let first: Result<u64, String> =
                cache.load(key.clone(), hooks(), async { Ok(1) }).await;
            assert_eq!(first, Ok(1));

            // Stale: a refresh in the background, which fails.
            clock.advance(Duration::from_secs(61));
            let failing = || -> Option<BackgroundLoad<Result<u64, String>>> {
                Some(Box::pin(async { Err("down".to_owned()) }))
            };
            assert_eq!(
                cache.hit_or_refresh(&key, hooks, herdcache_runtime::Tags::new, failing),
                Some(Ok(1))
            );
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(cache.stats().refresh_errors, 1);

            // Past the stale window, the origin down: fail-safe answers.
            clock.advance(Duration::from_secs(31));
            let answered: Result<u64, String> = cache
                .load(key.clone(), hooks(), async { Err("down".to_owned()) })
                .await;
            assert_eq!(answered, Ok(1));
        });
    });

    let spans = seen.spans.lock().unwrap().clone();
    let names: Vec<&str> = spans.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["herdcache.load", "herdcache.refresh", "herdcache.load"]
    );
    let outcomes: Vec<&str> = spans
        .iter()
        .map(|(_, fields)| fields["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["value", "error", "fail_safe"]);
    for (_, fields) in &spans {
        assert_eq!(fields["function"], "users.get");
        assert!(fields.contains_key("duration_us"));
        assert_eq!(fields["waiters"], "0");
    }
    let events = seen.events.lock().unwrap().clone();
    // Each load's end is an event too, which a subscriber that does not
    // report span closes (`fmt`'s default) shows.
    let ended: Vec<(&str, &str)> = events
        .iter()
        .filter(|event| event["message"].ends_with("ended"))
        .map(|event| (event["message"].as_str(), event["outcome"].as_str()))
        .collect();
    assert_eq!(
        ended,
        [
            ("herdcache: load ended", "value"),
            ("herdcache: refresh ended", "error"),
            ("herdcache: load ended", "fail_safe")
        ]
    );
    let messages: Vec<&str> = events
        .iter()
        .map(|event| event["message"].as_str())
        .filter(|message| !message.ends_with("ended"))
        .collect();
    assert!(messages[0].contains("refresh failed"), "{messages:?}");
    assert!(messages[1].contains("fail-safe served"), "{messages:?}");
    // One target for everything, the one the docs name for a filter.
    for fields in spans.iter().map(|(_, fields)| fields).chain(&events) {
        assert_eq!(fields["target"], "herdcache", "{fields:?}");
    }
    // Keys may be personal data: never in a span or an event.
    let everything = format!("{spans:?} {events:?}");
    assert!(!everything.contains("secret-user"), "{everything}");
}

/// A `distributed` function whose process has no Redis tier says so, once:
/// a fleet that forgot its URL would otherwise load once per instance.
#[cfg(feature = "redis")]
#[test]
fn a_distributed_function_without_a_redis_tier_warns_once() {
    use herdcache_runtime::__private::Slot;
    use herdcache_runtime::Codec;
    static SLOT: Slot = Slot::new("tests/tracing.rs:no-tier");
    fn config() -> CacheConfig {
        CacheConfig::new("catalog.price", Duration::from_secs(60)).distributed()
    }
    assert!(
        std::env::var_os("HERDCACHE_REDIS_URL").is_none(),
        "this test needs no HERDCACHE_REDIS_URL"
    );
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            let cache: &FnCache<u64, u64> = SLOT.cache("", config, Some(Codec::of(1)));
            assert_eq!(cache.name(), "catalog.price");
        }
    });
    let warnings: Vec<FieldMap> = seen
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|event| event.get("function").map(String::as_str) == Some("catalog.price"))
        .cloned()
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]["message"].contains("no Redis tier"));
}
