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

/// Migration 0015 (catalogue callbacks) arrives after 0016 was deployed
/// (its number was reserved): on such a database it still applies, leaves
/// every sale's delivery as it was, and from then on only a
/// `catalogue_callback` delivery may lack a sale (the constraints, added
/// NOT VALID, hold for the old rows too).
#[tokio::test]
async fn upgrading_to_0015_after_0016_admits_sale_less_callbacks_only() {
    let db = TestDb::create_up_to(14).await.expect("create db at 0014");
    let pool = db.pool();
    let only_0016 = sqlx::migrate::Migrator {
        migrations: MIGRATOR
            .iter()
            .filter(|m| m.version == 16)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ignore_missing: true,
        ..sqlx::migrate::Migrator::DEFAULT
    };
    only_0016
        .run(pool)
        .await
        .expect("0016 as deployed before 0015");
    exec(
        pool,
        "INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 't')",
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
    exec(
        pool,
        "INSERT INTO deliveries (id, tenant_id, sale_id, purpose, dedupe_key, target_url, target_ref)
         VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001',
                 '00000000-0000-0000-0000-0000000000b1', 'status_webhook', 'old', 'http://t', 'r')",
    )
    .await;

    MIGRATOR.run(pool).await.expect("migrate to the latest");

    let old: (Option<uuid::Uuid>, String) =
        sqlx::query_as("SELECT sale_id, purpose FROM deliveries WHERE dedupe_key = 'old'")
            .fetch_one(pool)
            .await
            .expect("old row");
    assert_eq!(old.1, "status_webhook");
    assert!(old.0.is_some());
    for constraint in [
        "deliveries_purpose_check",
        "deliveries_sale_unless_catalogue",
        "deliveries_subscription_fkey",
    ] {
        let sql = format!("ALTER TABLE deliveries VALIDATE CONSTRAINT {constraint}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .expect("the old rows satisfy it");
    }
    let insert = |sale: &'static str, purpose: &'static str, key: &'static str| {
        format!(
            "INSERT INTO deliveries (id, tenant_id, sale_id, purpose, dedupe_key, target_url, target_ref)
             VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', {sale},
                     '{purpose}', '{key}', 'http://t', 'r')"
        )
    };
    let sale = "'00000000-0000-0000-0000-0000000000b1'";
    sqlx::query(sqlx::AssertSqlSafe(insert(
        "NULL",
        "catalogue_callback",
        "cb",
    )))
    .execute(pool)
    .await
    .expect("a callback belongs to no sale");
    for (sql, constraint) in [
        (
            insert("NULL", "forward", "f"),
            "deliveries_sale_unless_catalogue",
        ),
        (
            insert(sale, "catalogue_callback", "c"),
            "deliveries_sale_unless_catalogue",
        ),
        (insert(sale, "fax", "x"), "deliveries_purpose_check"),
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(pool)
            .await
            .expect_err(&sql);
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.constraint(), Some(constraint), "{sql}");
    }
    db.cleanup().await.expect("cleanup");
}
