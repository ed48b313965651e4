//! What a migration does to the rows an older release left behind: the
//! database is migrated only up to the release before, filled as that
//! release would have filled it, then brought up to date.

use salesync_core::db::MIGRATOR;
use salesync_e2e::TestDb;
use sqlx::PgPool;

async fn exec(pool: &PgPool, sql: &'static str) {
    sqlx::query(sql).execute(pool).await.expect(sql);
}

/// Migration 0005 (HOT delivery updates): a dead delivery keeps the moment
/// it died (then `updated_at`) as `dead_at`; a delivery the status-poller
/// watches keeps `poll_after`, any other loses it; and the new constraints
/// hold from then on.
#[tokio::test]
async fn upgrading_to_0005_keeps_dead_letters_and_the_poll_queue() {
    let db = TestDb::create_up_to(4).await.expect("create db at 0004");
    let pool = db.pool();
    exec(
        pool,
        "INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 't')",
    )
    .await;
    exec(
        pool,
        "INSERT INTO integrations (id, tenant_id, name, target_kind, target_url, signing_secrets_enc)
         VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001',
                 'i', 'webhook', 'http://target', '\\x00')",
    )
    .await;
    exec(
        pool,
        "INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status, currency,
                            gross, occurred_at, business_date)
         VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-000000000001',
                 's', '\\x00', '{}', 'completed', 'EUR', 100, now(), current_date)",
    )
    .await;
    // (key, state, target status final, poll_after, updated_at) as 0004 allowed them.
    exec(
        pool,
        "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, purpose, dedupe_key,
                                 target_url, target_ref, state, target_status_final,
                                 poll_after, updated_at)
         SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001',
                '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1',
                'forward', v.key, 'http://target', v.key, v.state, v.final, v.poll_after,
                '2026-01-02 03:04:05.678901+00'
         FROM (VALUES ('dead', 'dead', false, NULL::timestamptz),
                      ('watched', 'delivered', false, now()),
                      ('final', 'delivered', true, now()),
                      ('pending', 'pending', false, now())) AS v(key, state, final, poll_after)",
    )
    .await;

    MIGRATOR.run(pool).await.expect("migrate to the latest");

    let rows: Vec<(String, Option<chrono::DateTime<chrono::Utc>>, bool)> = sqlx::query_as(
        "SELECT dedupe_key, dead_at, poll_after IS NOT NULL FROM deliveries ORDER BY dedupe_key",
    )
    .fetch_all(pool)
    .await
    .expect("read back");
    let died = "2026-01-02T03:04:05.678901Z".parse().unwrap();
    assert_eq!(
        rows,
        vec![
            ("dead".into(), Some(died), false),
            ("final".into(), None, false),
            ("pending".into(), None, false),
            ("watched".into(), None, true),
        ]
    );

    // From now on a dead delivery without `dead_at`, or a polled one the
    // poller would not watch, is refused.
    for (sql, constraint) in [
        (
            "UPDATE deliveries SET state = 'dead' WHERE dedupe_key = 'pending'",
            "deliveries_dead_at_while_dead",
        ),
        (
            "UPDATE deliveries SET target_status_final = true WHERE dedupe_key = 'watched'",
            "deliveries_polled_while_watched",
        ),
    ] {
        let err = sqlx::query(sql).execute(pool).await.expect_err(sql);
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.constraint(), Some(constraint), "{sql}");
    }
    db.cleanup().await.expect("cleanup");
}
