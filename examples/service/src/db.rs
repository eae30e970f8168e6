//! The database: SQLite through sqlx (runtime queries only), a simulated
//! latency on every call, a fault switch, and a count of every query.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// The schema, run at every start (idempotent).
const MIGRATIONS: &str = "
CREATE TABLE IF NOT EXISTS orgs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS users_org ON users(org_id);
CREATE TABLE IF NOT EXISTS accounts (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    balance_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    amount_cents INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS payments_user ON payments(user_id);
";

/// Users an org, when seeding.
pub const USERS_PER_ORG: u32 = 50;
/// Each seeded account's balance.
pub const SEED_BALANCE_CENTS: i64 = 1_000_000;

/// What every database call does, set by `POST /admin/db-fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Calls work.
    Ok,
    /// Calls fail at once.
    Fail,
    /// Calls hang until the database timeout, then fail.
    Hang,
}

impl Fault {
    /// `ok`, `fail` or `hang`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ok" => Some(Fault::Ok),
            "fail" => Some(Fault::Fail),
            "hang" => Some(Fault::Hang),
            _ => None,
        }
    }

    fn from_u8(n: u8) -> Self {
        match n {
            1 => Fault::Fail,
            2 => Fault::Hang,
            _ => Fault::Ok,
        }
    }
}

/// A database call that did not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbError {
    /// The fault switch says `fail`.
    Unavailable,
    /// The fault switch says `hang`, and the call timed out.
    Timeout,
    /// SQLite said no.
    Sql(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Unavailable => f.write_str("the database is unavailable"),
            DbError::Timeout => f.write_str("the database timed out"),
            DbError::Sql(message) => write!(f, "database error: {message}"),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        DbError::Sql(error.to_string())
    }
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct User {
    /// Its id.
    pub id: i64,
    /// Its org.
    pub org_id: i64,
    /// Its name.
    pub name: String,
    /// Its email.
    pub email: String,
    /// Bumped by each write.
    pub version: i64,
}

/// A member of an org, as the member list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Member {
    /// The user's id.
    pub id: i64,
    /// The user's name.
    pub name: String,
}

/// An org's members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The org.
    pub org_id: i64,
    /// Its name.
    pub name: String,
    /// Its members, by id.
    pub members: Vec<Member>,
}

/// A payment made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Payment {
    /// Its id.
    pub id: i64,
    /// Who paid.
    pub user_id: i64,
    /// How much.
    pub amount_cents: i64,
    /// The request's idempotency key.
    pub idempotency_key: String,
    /// When (UTC, RFC 3339).
    pub created_at: String,
}

/// What a charge can meet besides a database error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeError {
    /// No such user (or account).
    NoAccount,
    /// The balance is lower than the amount.
    InsufficientFunds,
    /// The database did not answer.
    Db(DbError),
}

impl From<DbError> for ChargeError {
    fn from(error: DbError) -> Self {
        ChargeError::Db(error)
    }
}

impl From<sqlx::Error> for ChargeError {
    fn from(error: sqlx::Error) -> Self {
        ChargeError::Db(error.into())
    }
}

/// The database handle: a pool, the fault switch and the query count.
/// Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
    shared: Arc<Shared>,
}

struct Shared {
    fault: AtomicU8,
    queries: AtomicU64,
    latency: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("fault", &self.fault())
            .field("queries", &self.queries())
            .finish()
    }
}

impl Db {
    /// Connects, migrates and seeds `seed_users` users (idempotently).
    pub async fn open(
        url: &str,
        seed_users: u32,
        latency: Duration,
        timeout: Duration,
    ) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(10));
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if memory {
            // One connection, kept forever: each in-memory connection is a
            // database of its own.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.journal_mode(SqliteJournalMode::Wal))
                .await?
        };
        sqlx::raw_sql(MIGRATIONS).execute(&pool).await?;
        let db = Db {
            pool,
            shared: Arc::new(Shared {
                fault: AtomicU8::new(0),
                queries: AtomicU64::new(0),
                latency,
                timeout,
            }),
        };
        db.seed(seed_users).await?;
        Ok(db)
    }

    async fn seed(&self, users: u32) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        let orgs = users.div_ceil(USERS_PER_ORG).max(1);
        for first in (1..=orgs).step_by(500) {
            let last = (first + 499).min(orgs);
            let values: Vec<String> = (first..=last)
                .map(|id| format!("({id}, 'Org {id}')"))
                .collect();
            sqlx::query(&format!(
                "INSERT OR IGNORE INTO orgs (id, name) VALUES {}",
                values.join(",")
            ))
            .execute(&mut *tx)
            .await?;
        }
        for first in (1..=users).step_by(500) {
            let last = (first + 499).min(users);
            let people: Vec<String> = (first..=last)
                .map(|id| {
                    let org = (id - 1) / USERS_PER_ORG + 1;
                    format!("({id}, {org}, 'User {id}', 'user{id}@example.com', 1)")
                })
                .collect();
            sqlx::query(&format!(
                "INSERT OR IGNORE INTO users (id, org_id, name, email, version) VALUES {}",
                people.join(",")
            ))
            .execute(&mut *tx)
            .await?;
            let accounts: Vec<String> = (first..=last)
                .map(|id| format!("({id}, {SEED_BALANCE_CENTS})"))
                .collect();
            sqlx::query(&format!(
                "INSERT OR IGNORE INTO accounts (user_id, balance_cents) VALUES {}",
                accounts.join(",")
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the fault switch.
    pub fn set_fault(&self, fault: Fault) {
        let n = match fault {
            Fault::Ok => 0,
            Fault::Fail => 1,
            Fault::Hang => 2,
        };
        self.shared.fault.store(n, Relaxed);
    }

    /// The fault switch.
    pub fn fault(&self) -> Fault {
        Fault::from_u8(self.shared.fault.load(Relaxed))
    }

    /// Database calls made since start (failed ones included).
    pub fn queries(&self) -> u64 {
        self.shared.queries.load(Relaxed)
    }

    /// What every call goes through: counted, delayed, and failed or hung
    /// by the fault switch.
    async fn call(&self) -> Result<(), DbError> {
        self.shared.queries.fetch_add(1, Relaxed);
        metrics::counter!("service_db_queries_total").increment(1);
        match self.fault() {
            Fault::Ok => {
                if !self.shared.latency.is_zero() {
                    tokio::time::sleep(self.shared.latency).await;
                }
                Ok(())
            }
            Fault::Fail => Err(DbError::Unavailable),
            Fault::Hang => {
                tokio::time::sleep(self.shared.timeout).await;
                Err(DbError::Timeout)
            }
        }
    }

    /// A user, if there is one.
    pub async fn user(&self, id: i64) -> Result<Option<User>, DbError> {
        self.call().await?;
        Ok(sqlx::query_as::<_, User>(
            "SELECT id, org_id, name, email, version FROM users WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// An org's members, if the org exists.
    pub async fn members(&self, org_id: i64) -> Result<Option<Members>, DbError> {
        self.call().await?;
        let Some((name,)) = sqlx::query_as::<_, (String,)>("SELECT name FROM orgs WHERE id = ?")
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let members =
            sqlx::query_as::<_, Member>("SELECT id, name FROM users WHERE org_id = ? ORDER BY id")
                .bind(org_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(Some(Members {
            org_id,
            name,
            members,
        }))
    }

    /// Writes a user's name and email if its version is still `version`
    /// (`None`: whatever it is). `Ok(None)`: no such user, or another
    /// write came first.
    pub async fn update_user(
        &self,
        id: i64,
        version: Option<i64>,
        name: &str,
        email: &str,
    ) -> Result<Option<User>, DbError> {
        self.call().await?;
        Ok(sqlx::query_as::<_, User>(
            "UPDATE users SET name = ?, email = ?, version = version + 1
             WHERE id = ? AND (? IS NULL OR version = ?)
             RETURNING id, org_id, name, email, version",
        )
        .bind(name)
        .bind(email)
        .bind(id)
        .bind(version)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A user's balance, if the user has an account.
    pub async fn balance(&self, user_id: i64) -> Result<Option<i64>, DbError> {
        self.call().await?;
        Ok(
            sqlx::query_as::<_, (i64,)>("SELECT balance_cents FROM accounts WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|(balance,)| balance),
        )
    }

    /// Debits the account and records the payment, in one transaction.
    pub async fn charge(
        &self,
        user_id: i64,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<Payment, ChargeError> {
        self.call().await?;
        let mut tx = self.pool.begin().await?;
        let debited = sqlx::query(
            "UPDATE accounts SET balance_cents = balance_cents - ?
             WHERE user_id = ? AND balance_cents >= ?",
        )
        .bind(amount_cents)
        .bind(user_id)
        .bind(amount_cents)
        .execute(&mut *tx)
        .await?;
        if debited.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 FROM accounts WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                ChargeError::InsufficientFunds
            } else {
                ChargeError::NoAccount
            });
        }
        let payment = sqlx::query_as::<_, Payment>(
            "INSERT INTO payments (user_id, amount_cents, idempotency_key) VALUES (?, ?, ?)
             RETURNING id, user_id, amount_cents, idempotency_key, created_at",
        )
        .bind(user_id)
        .bind(amount_cents)
        .bind(idempotency_key)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(payment)
    }

    /// A user's payments, newest first.
    pub async fn payments(&self, user_id: i64) -> Result<Vec<Payment>, DbError> {
        self.call().await?;
        Ok(sqlx::query_as::<_, Payment>(
            "SELECT id, user_id, amount_cents, idempotency_key, created_at
             FROM payments WHERE user_id = ? ORDER BY id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
