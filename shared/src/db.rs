//! PostgreSQL pool: connect with backoff (the database may still be starting),
//! run the migrations embedded from `shared/migrations`, and keep a readiness
//! flag honest with a periodic ping.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio_util::sync::CancellationToken;

use crate::ops::ReadyFlag;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How PostgreSQL plans the pool's prepared statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plans {
    /// PostgreSQL's own choice per statement: custom plans (planned on every
    /// execution, with the parameters' values) until a generic plan looks no
    /// dearer. Right for queries with optional filters (`$1 IS NULL OR …`),
    /// which only a custom plan can turn into index conditions.
    Chosen,
    /// Always the cached generic plan. For hot paths whose statements take
    /// arrays (`= ANY($1)`, `UNNEST`): PostgreSQL costs a custom plan for the
    /// actual array length and a generic one for a guess of ten elements, so
    /// with small batches it never switches and plans every execution (a
    /// third of the forwarder's statement time at 100 sales/s, measured).
    Generic,
}

/// Connects (retrying for up to about a minute) and migrates, with
/// PostgreSQL's own plan choice.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    connect_and_migrate_with(url, max_connections, Plans::Chosen).await
}

/// Connects (retrying for up to about a minute) and migrates.
pub async fn connect_and_migrate_with(
    url: &str,
    max_connections: u32,
    plans: Plans,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL {} is invalid: {e}", redact(url)))?;
    // Statements are prepared once per connection and run for the process's
    // life, so a generic plan, once used, stays. Every query here is meant
    // to be an index lookup, but a generic plan made while a table was nearly
    // empty (a fresh deployment) would keep scanning it whole as it grows.
    // Ruling out sequential scans keeps the generic plans on the indexes
    // (where no index applies, a sequential scan is still used). See
    // docs/benchmarks.md.
    //
    // JIT is off: with sequential scans ruled out, a query that must still
    // scan (a small table without a usable index, like the forwarder's
    // replica rows) is costed at 1e10, far above `jit_above_cost`, and was
    // JIT-compiled on every run: ~360 ms of CPU for a one-row table, once a
    // second. None of these short queries gains from JIT.
    let options = options.options([("enable_seqscan", "off"), ("jit", "off")]);
    let options = match plans {
        Plans::Chosen => options,
        Plans::Generic => options.options([("plan_cache_mode", "force_generic_plan")]),
    };
    let pool = (|| async {
        pool_options(max_connections)
            .connect_with(options.clone())
            .await
    })
    .retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(15),
    )
    .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "database not reachable yet"))
    .await
    .map_err(|e| anyhow::anyhow!("cannot connect to the database at {}: {e}", redact(url)))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    Ok(pool)
}

/// The pool settings every pool shares.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings a connection when it is returned and, by default,
        // again when it is handed out: a round trip (and a wake-up of the
        // server process) per statement for nothing, since a connection
        // that breaks while idle fails its next statement, which every
        // caller retries, and the ping on return then closes it.
        .test_before_acquire(false)
        // A connection's buffers grow to the largest statement it ever
        // sent or result it read (a batch of 256 deliveries with their
        // bodies is ~1 MiB) and sqlx never shrinks them on its own: over
        // hours every pooled connection would keep its high-water mark.
        // Shrink them back to 8 KiB whenever a connection is returned.
        .after_release(|conn, _| {
            Box::pin(async move {
                conn.shrink_buffers();
                Ok(true)
            })
        })
}

/// One pooled connection kept by a loop that talks to the database every few
/// milliseconds (a consumer's batches, ingest's group commits).
///
/// sqlx tests every connection given back to its pool with a round trip
/// (`Sync` → `ReadyForQuery`), and nothing turns that off: one more wake-up
/// of the server process and of ours per statement, which on a busy machine
/// queues behind everything else. Holding the connection pays it once. After
/// an error the connection goes back to the pool (whose test then closes it
/// if it broke) and the next call takes another, so a restarted database or
/// a dropped connection costs one failed call, as with the pool. The
/// connection goes back when the holder is dropped or, once the pool is
/// closed, at its next call.
pub struct HeldConnection {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl HeldConnection {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, conn: None }
    }

    /// Runs `work` on the held connection, taking one from the pool first if
    /// none is held.
    pub async fn run<T, E>(
        &mut self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        if self.pool.is_closed() {
            // Given back, the pool closes it (and `PgPool::close`, which
            // waits for every connection, can finish); acquiring then fails.
            self.conn = None;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            none => none.insert(self.pool.acquire().await?),
        };
        let result = work(&mut **conn).await;
        match &result {
            // As the pool does on every return (see `pool_options`).
            Ok(_) => conn.shrink_buffers(),
            Err(_) => self.conn = None,
        }
        result
    }
}

/// A small pool on `pool`'s database whose commits do not wait for their WAL
/// flush: for writes a crash may lose because they are redone anyway (the
/// outbox relay's deletions: a row that comes back is published again, and
/// consumers dedupe). Connects on first use.
pub fn async_commit_pool(pool: &PgPool, max_connections: u32) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .options([("synchronous_commit", "off")]);
    pool_options(max_connections).connect_lazy_with(options)
}

/// Pings the database every few seconds and reports the result as readiness.
pub fn watch_readiness(pool: PgPool, flag: ReadyFlag, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let ok = sqlx::query("SELECT 1").execute(&pool).await.is_ok();
            flag.set(ok);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(if ok { 5 } else { 1 })) => {}
            }
        }
    });
}

/// Hides the password in a connection URL for log and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
