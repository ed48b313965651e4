//! Retention on the real PostgreSQL: rows backdated (ids too: they are
//! UUIDv7) into every state a delivery can be in, then passes with a small
//! batch. Exactly the old settled rows go; what is not final, or recent,
//! stays; two runners at once neither double-count nor deadlock.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::metrics::Metrics;
use status_poller::retention::{PassReport, Retention, RetentionSettings};
use support::TestEnv;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn days_ago(d: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(d)
}

/// A UUIDv7 of the moment `t`, as an id made then would be.
fn v7_at(t: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(t.timestamp_millis()).expect("after 1970");
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        ms / 1000,
        u32::try_from(ms % 1000).expect("ms") * 1_000_000,
    );
    Uuid::new_v7(ts)
}

/// One seeded delivery: what it is, and whether retention may remove it.
struct Seeded {
    label: &'static str,
    id: DeliveryId,
    sale: SaleId,
    purpose: &'static str,
    removable: bool,
}

struct Fixture {
    env: TestEnv,
    tenant: TenantId,
    integration: IntegrationId,
    seeded: Vec<Seeded>,
}

impl Fixture {
    async fn new() -> Self {
        let env = TestEnv::database_only().await;
        let tenant = env.tenant().await;
        let integration = env
            .integration(tenant, "webhook", "http://127.0.0.1:9/in", None, None)
            .await;
        Self {
            env,
            tenant,
            integration,
            seeded: Vec::new(),
        }
    }

    async fn sale(&self, created: DateTime<Utc>) -> SaleId {
        let sale = SaleId::from(v7_at(created));
        sqlx::query(
            "INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status, currency,
                 gross, occurred_at, business_date, created_at, updated_at)
             VALUES ($1, $2, $3, '\\x00'::bytea, '{}'::jsonb, 'completed', 'EUR', 1000, $4,
                     current_date, $4, $4)",
        )
        .bind(sale)
        .bind(self.tenant)
        .bind(format!("ext-{sale}"))
        .bind(created)
        .execute(&self.env.pool)
        .await
        .expect("insert sale");
        sale
    }

    /// A delivery created at `created`, last changed at `changed`, in
    /// `state`, with one attempt (with excerpt) started when it was created,
    /// one decision and one history row of the same age.
    #[allow(clippy::too_many_arguments)]
    async fn delivery(
        &mut self,
        label: &'static str,
        purpose: &'static str,
        state: &str,
        created: DateTime<Utc>,
        changed: DateTime<Utc>,
        watched: bool,
        discarded: bool,
        removable: bool,
    ) {
        let sale = self.sale(created).await;
        let id = DeliveryId::from(v7_at(created));
        let integration = (purpose == "forward").then_some(self.integration);
        sqlx::query(
            "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, purpose, dedupe_key,
                 target_url, target_ref, state, attempts, delivered_at, poll_after, dead_reason,
                 dead_at, discarded_at, body, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'http://127.0.0.1:9/in', $1::text, $7, 1,
                     CASE WHEN $7 = 'delivered' THEN $9 END,
                     CASE WHEN $10 THEN $9 END,
                     CASE WHEN $7 = 'dead' THEN 'gave up' END,
                     CASE WHEN $7 = 'dead' THEN $9 END,
                     CASE WHEN $11 THEN $9 END,
                     '{\"k\": 1}'::jsonb, $8, $9)",
        )
        .bind(id)
        .bind(self.tenant)
        .bind(sale)
        .bind(integration)
        .bind(purpose)
        .bind(format!("{purpose}:{sale}:{}", self.integration))
        .bind(state)
        .bind(created)
        .bind(changed)
        .bind(watched)
        .bind(discarded)
        .execute(&self.env.pool)
        .await
        .expect("insert delivery");
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,
                 status_code, outcome, response_excerpt)
             VALUES ($1, 1, $2, 5, 200, 'delivered', 'ok from the target')",
        )
        .bind(id)
        .bind(created)
        .execute(&self.env.pool)
        .await
        .expect("insert attempt");
        sqlx::query(
            "INSERT INTO sale_decisions (sale_id, integration_id, event_id, trigger, status,
                 forwarded, reason, created_at)
             VALUES ($1, $2, $3, 'created', 'completed', true, 'forwarded', $4)",
        )
        .bind(sale)
        .bind(self.integration)
        .bind(Uuid::now_v7())
        .bind(created)
        .execute(&self.env.pool)
        .await
        .expect("insert decision");
        sqlx::query(
            "INSERT INTO sale_status_history (sale_id, status, origin, dedupe_key, created_at)
             VALUES ($1, 'completed', 'source', 'source:initial', $2)",
        )
        .bind(sale)
        .bind(created)
        .execute(&self.env.pool)
        .await
        .expect("insert history");
        self.seeded.push(Seeded {
            label,
            id,
            sale,
            purpose,
            removable,
        });
    }

    /// Every state, old and new.
    async fn seed_all(&mut self) {
        // (what, purpose, state, created / last changed days ago, still
        // watched, discarded, may go, how many)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            i64,
            i64,
            bool,
            bool,
            bool,
            usize,
        );
        const CASES: &[Case] = &[
            (
                "old delivered forward",
                "forward",
                "delivered",
                120,
                100,
                false,
                false,
                true,
                4,
            ),
            (
                "old delivered webhook",
                "status_webhook",
                "delivered",
                120,
                100,
                false,
                false,
                true,
                4,
            ),
            (
                "old discarded dead",
                "forward",
                "dead",
                120,
                100,
                false,
                true,
                true,
                1,
            ),
            (
                "old dead awaiting a person",
                "forward",
                "dead",
                120,
                100,
                false,
                false,
                false,
                1,
            ),
            (
                "old pending",
                "forward",
                "pending",
                120,
                100,
                false,
                false,
                false,
                1,
            ),
            (
                "old retrying",
                "forward",
                "retrying",
                120,
                100,
                false,
                false,
                false,
                1,
            ),
            (
                "old delivered, still watched",
                "forward",
                "delivered",
                120,
                100,
                true,
                false,
                false,
                1,
            ),
            (
                "old, settled recently",
                "forward",
                "delivered",
                120,
                10,
                false,
                false,
                false,
                1,
            ),
            (
                "settled recently",
                "status_webhook",
                "delivered",
                10,
                10,
                false,
                false,
                false,
                1,
            ),
            ("new", "forward", "delivered", 0, 0, false, false, false, 1),
        ];
        for &(label, purpose, state, created, changed, watched, discarded, removable, n) in CASES {
            for _ in 0..n {
                let (created, changed) = (days_ago(created), days_ago(changed));
                self.delivery(
                    label, purpose, state, created, changed, watched, discarded, removable,
                )
                .await;
            }
        }
    }

    fn retention(&self, batch: i64) -> Retention {
        Retention {
            pool: self.env.pool.clone(),
            settings: RetentionSettings {
                interval: Some(Duration::from_secs(3600)),
                excerpts: Duration::from_secs(30 * 86_400),
                deliveries: Duration::from_secs(90 * 86_400),
                batch,
            },
            metrics: Metrics::new("status-poller-test"),
        }
    }

    async fn remaining(&self) -> Vec<DeliveryId> {
        sqlx::query_scalar("SELECT id FROM deliveries ORDER BY id")
            .fetch_all(&self.env.pool)
            .await
            .expect("read deliveries")
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.env.pool)
            .await
            .expect("count")
    }

    fn removable(&self) -> usize {
        self.seeded.iter().filter(|s| s.removable).count()
    }
}

async fn pass(r: &Retention) -> PassReport {
    tokio::time::timeout(
        Duration::from_secs(120),
        r.pass(Utc::now(), &CancellationToken::new()),
    )
    .await
    .expect("a pass ends")
    .expect("a pass succeeds")
}

#[tokio::test]
async fn removes_exactly_the_old_settled_rows_in_bounded_batches() {
    let mut f = Fixture::new().await;
    f.seed_all().await;
    let retention = f.retention(2);

    // First pass: status webhooks go; forwards are marked on their sale.
    let first = pass(&retention).await;
    assert!(first.ran);
    let forwards = f
        .seeded
        .iter()
        .filter(|s| s.removable && s.purpose == "forward")
        .count();
    assert_eq!(first.deliveries_removed as usize, f.removable() - forwards);
    assert_eq!(first.deliveries_marked as usize, forwards);
    assert!(first.batches >= 5, "several bounded batches: {first:?}");
    // Second pass: the marked forwards go.
    let second = pass(&retention).await;
    assert_eq!(second.deliveries_removed as usize, forwards, "{second:?}");
    assert_eq!(second.deliveries_marked, 0);

    let remaining = f.remaining().await;
    for s in &f.seeded {
        assert_eq!(
            remaining.contains(&s.id),
            !s.removable,
            "{}: kept = {}",
            s.label,
            remaining.contains(&s.id)
        );
    }
    // Attempts went with their deliveries; sales are all kept, and a removed
    // forward's sale remembers where it went.
    assert_eq!(
        f.count("SELECT count(*) FROM delivery_attempts").await as usize,
        f.seeded.len() - f.removable()
    );
    assert_eq!(
        f.count("SELECT count(*) FROM sales").await as usize,
        f.seeded.len()
    );
    for s in f
        .seeded
        .iter()
        .filter(|s| s.removable && s.purpose == "forward")
    {
        let settled: Vec<IntegrationId> =
            sqlx::query_scalar("SELECT unnest(settled_forwards) FROM sales WHERE id = $1")
                .bind(s.sale)
                .fetch_all(&f.env.pool)
                .await
                .expect("read sale");
        assert_eq!(settled, vec![f.integration], "{}", s.label);
    }
    // Excerpts older than 30 days are cleared on what is kept; the recent ones stay.
    assert_eq!(
        f.count("SELECT count(*) FROM delivery_attempts WHERE response_excerpt IS NOT NULL")
            .await,
        2,
        "only the two attempts of the last 30 days keep their excerpt"
    );
    // Decisions and history: those older than 90 days are gone.
    assert_eq!(f.count("SELECT count(*) FROM sale_decisions").await, 2);
    assert_eq!(f.count("SELECT count(*) FROM sale_status_history").await, 2);

    // Nothing more to do; nothing else goes.
    let third = pass(&retention).await;
    assert_eq!(
        (
            third.deliveries_removed,
            third.deliveries_marked,
            third.excerpts_cleared
        ),
        (0, 0, 0),
        "{third:?}"
    );
    assert_eq!(f.remaining().await, remaining);
}

#[tokio::test]
async fn two_runners_at_once_neither_double_work_nor_deadlock() {
    let mut f = Fixture::new().await;
    f.seed_all().await;
    let (a, b) = (f.retention(1), f.retention(1));
    let mut removed = 0;
    let mut ran = 0;
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(pass(&a), pass(&b));
        removed += ra.deliveries_removed + rb.deliveries_removed;
        ran += usize::from(ra.ran) + usize::from(rb.ran);
    }
    assert!(ran >= 3, "each round at least one runner ran");
    assert_eq!(
        removed as usize,
        f.removable(),
        "each removable row counted once"
    );
    assert_eq!(f.remaining().await.len(), f.seeded.len() - f.removable());

    // While a pass holds the lock, another runner skips its pass.
    let mut holder = f.env.pool.acquire().await.expect("connection");
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(status_poller::retention::store::LOCK_KEY)
        .fetch_one(&mut *holder)
        .await
        .expect("lock");
    assert!(held);
    assert!(
        !pass(&a).await.ran,
        "skipped while another runner holds the lock"
    );
}

#[tokio::test]
async fn rows_the_hot_path_holds_are_skipped_not_waited_for() {
    let mut f = Fixture::new().await;
    f.seed_all().await;
    let retention = f.retention(2);
    // A status change (or an erasure) holds one removable delivery's sale.
    let held = f
        .seeded
        .iter()
        .find(|s| s.removable && s.purpose == "status_webhook")
        .map(|s| (s.id, s.sale))
        .expect("a removable status webhook");
    let mut tx = f.env.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM sales WHERE id = $1 FOR UPDATE")
        .bind(held.1)
        .execute(&mut *tx)
        .await
        .expect("lock the sale");

    // Both passes finish while the lock is held (`pass` fails the test if
    // one never ends); the held delivery stays, every other one goes.
    pass(&retention).await;
    pass(&retention).await;
    let remaining = f.remaining().await;
    assert!(remaining.contains(&held.0), "the held row is skipped");
    assert_eq!(remaining.len(), f.seeded.len() - f.removable() + 1);

    // Once the lock is gone, the next pass takes it.
    tx.rollback().await.expect("release");
    let later = pass(&retention).await;
    assert_eq!(later.deliveries_removed, 1, "{later:?}");
    assert!(!f.remaining().await.contains(&held.0));
}

/// Catalogue callbacks belong to no sale: old settled ones go too (batch
/// after batch), the rest stays.
#[tokio::test]
async fn old_settled_catalogue_callbacks_go_too() {
    let f = Fixture::new().await;
    // (state, created / last changed days ago, discarded, may go)
    let cases = [
        ("delivered", 120, false, true),
        ("delivered", 110, false, true),
        ("delivered", 100, false, true),
        ("dead", 120, true, true),
        ("dead", 120, false, false),
        ("retrying", 120, false, false),
        ("delivered", 10, false, false),
    ];
    let mut kept = Vec::new();
    for (i, (state, days, discarded, goes)) in cases.into_iter().enumerate() {
        let at = days_ago(days);
        let id = DeliveryId::from(v7_at(at));
        sqlx::query(
            "INSERT INTO deliveries (id, tenant_id, sale_id, purpose, dedupe_key, target_url,
                 target_ref, state, attempts, dead_reason, dead_at, discarded_at, body,
                 created_at, updated_at)
             VALUES ($1, $2, NULL, 'catalogue_callback', $3, 'http://127.0.0.1:9/cb', $1::text,
                     $4, 1, CASE WHEN $4 = 'dead' THEN 'gave up' END,
                     CASE WHEN $4 = 'dead' THEN $5 END, CASE WHEN $6 THEN $5 END,
                     '{}'::jsonb, $5, $5)",
        )
        .bind(id)
        .bind(f.tenant)
        .bind(format!("catalogue.changed:{i}"))
        .bind(state)
        .bind(at)
        .bind(discarded)
        .execute(&f.env.pool)
        .await
        .expect("insert callback");
        if !goes {
            kept.push(id);
        }
    }
    let report = pass(&f.retention(2)).await;
    assert_eq!(report.deliveries_removed, 4, "{report:?}");
    kept.sort();
    assert_eq!(f.remaining().await, kept);
}
