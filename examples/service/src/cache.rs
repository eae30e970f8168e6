//! The cached reads, the writes that bust them, and the idempotent charge:
//! every herdcache attribute the service uses.

use herdcache::{cached, idempotent, invalidate, Entry};

use crate::config::Profile;
use crate::db::{Db, Members, Payment, User};
use crate::error::AppError;

/// The entry of an `Option`'s value: `None` when there is no value.
pub fn transpose<T>(entry: Entry<Option<T>>) -> Option<Entry<T>> {
    let (served, age, fresh_for) = (entry.served(), entry.age(), entry.fresh_for());
    let (swr, fail_safe) = (entry.stale_window(), entry.fail_safe_window());
    entry.into_value().map(|value| {
        Entry::new(value, served)
            .with_age(age)
            .with_fresh_for(fresh_for)
            .with_windows(swr, fail_safe)
    })
}

/// A user with how the cache served it, by the configured profile's
/// loader.
pub async fn user_entry(
    profile: Profile,
    id: i64,
    db: &Db,
) -> Result<Entry<Option<User>>, AppError> {
    match profile {
        Profile::Default => user_default_entry(id, db).await,
        Profile::Short => user_short_entry(id, db).await,
        Profile::ShortNoSwr => user_short_noswr_entry(id, db).await,
    }
}

/// A user, by the configured profile's loader.
pub async fn user(profile: Profile, id: i64, db: &Db) -> Result<Option<User>, AppError> {
    match profile {
        Profile::Default => user_default(id, db).await,
        Profile::Short => user_short(id, db).await,
        Profile::ShortNoSwr => user_short_noswr(id, db).await,
    }
}

/// A user: fresh for a minute, served stale for 30 s more while one
/// refresh runs, and for 10 minutes when the database fails.
#[cached(
    ttl = "60s",
    jitter = 0.1,
    swr = "30s",
    fail_safe = "10m",
    key = id,
    tags = ["user:{id}"],
    distributed = true,
    name = "service.user"
)]
pub async fn user_default(id: i64, db: &Db) -> Result<Option<User>, AppError> {
    Ok(db.user(id).await?)
}

/// `CACHE_PROFILE=short`: a user that expires every second, the expiry
/// absorbed by `swr`; a load that outlasts 100 ms (a database that hangs)
/// is answered by the fallback while it goes on in the background.
#[cached(
    ttl = "1s",
    swr = "2s",
    fail_safe = "10m",
    timeout = "100ms",
    key = id,
    tags = ["user:{id}"],
    distributed = true,
    name = "service.user_short"
)]
pub async fn user_short(id: i64, db: &Db) -> Result<Option<User>, AppError> {
    Ok(db.user(id).await?)
}

/// `CACHE_PROFILE=short-noswr`: the same expiry, paid by the callers
/// (and the same 100 ms `timeout`).
#[cached(
    ttl = "1s",
    fail_safe = "10m",
    timeout = "100ms",
    key = id,
    tags = ["user:{id}"],
    distributed = true,
    name = "service.user_short_noswr"
)]
pub async fn user_short_noswr(id: i64, db: &Db) -> Result<Option<User>, AppError> {
    Ok(db.user(id).await?)
}

/// An org's member list, busted by a write to any member.
#[cached(
    ttl = "30s",
    swr = "30s",
    fail_safe = "10m",
    key = org_id,
    tags = ["org:{org_id}:members"],
    distributed = true,
    name = "service.org_members"
)]
pub async fn org_members(org_id: i64, db: &Db) -> Result<Option<Members>, AppError> {
    Ok(db.members(org_id).await?)
}

/// A balance: never stale (no swr, no fail-safe), busted by each payment.
#[cached(
    ttl = "60s",
    key = user_id,
    tags = ["balance:{user_id}"],
    distributed = true,
    name = "service.balance"
)]
pub async fn balance(user_id: i64, db: &Db) -> Result<Option<i64>, AppError> {
    Ok(db.balance(user_id).await?)
}

/// Writes a user if its version is still `version` (`None`: any), then
/// busts the user (every profile's loader, by its tag) and its org's
/// member list. `Err(PreconditionFailed)` when another write came first.
#[invalidate(tags = ["user:{id}", "org:{org_id}:members"])]
pub async fn update_user(
    id: i64,
    org_id: i64,
    version: Option<i64>,
    name: &str,
    email: &str,
    db: &Db,
) -> Result<User, AppError> {
    match db.update_user(id, version, name, email).await? {
        Some(user) => Ok(user),
        None => Err(AppError::PreconditionFailed),
    }
}

/// Charges `user_id` once per idempotency key: a retry joins the charge in
/// flight or replays its payment; another user or amount under the same
/// key is refused (422), never a second charge. The balance is busted
/// before it returns.
#[idempotent(
    key = idem_key,
    ttl = "24h",
    fingerprint = [user_id, amount_cents],
    name = "service.payments.charge"
)]
pub async fn charge(
    idem_key: &str,
    user_id: i64,
    amount_cents: i64,
    db: &Db,
) -> Result<Payment, AppError> {
    let payment = db.charge(user_id, amount_cents, idem_key).await?;
    balance_invalidate(user_id).await;
    Ok(payment)
}
