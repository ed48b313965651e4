//! One event the database refuses — a trigger in the test's own database
//! raises for one sale — among good ones, as a bundle's part, all in one
//! batch: it is dead-lettered with the database's reason and its own body,
//! every other event is decided and forwarded exactly once, and the queue
//! drains. A database that is down is no refusal: nothing is dead-lettered,
//! and every event is decided once it is back.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Sandbox, TAP, event, in_sandbox, insert_sale, message, open_tap, start_filter, take};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use salesync_core::amqp::publisher::OutgoingMessage;
use salesync_core::amqp::{bundle, topology};
use salesync_core::domain::ids::{IntegrationId, SaleId, TenantId};
use salesync_core::domain::sample_sale;
use salesync_core::messages::{Envelope, ForwardCommand, SaleEvent, Trigger};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const SALES: usize = 12;
/// The first this many events travel as one bundle, the rest one by one.
const BUNDLED: usize = 8;
/// The sale the trigger refuses: a part of the bundle.
const POISON: usize = 5;
const PATIENCE: Duration = Duration::from_secs(30);

/// A tenant whose one integration forwards every completed sale, with
/// [`SALES`] completed sales and an event for each.
struct Books {
    sales: Vec<SaleId>,
    events: Vec<Envelope<SaleEvent>>,
}

async fn insert_books(pool: &PgPool) -> anyhow::Result<Books> {
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
        .bind(tenant)
        .bind(format!("tenant-{tenant}"))
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO integrations (id, tenant_id, name, target_kind, target_url,
             signing_secrets_enc, trigger_statuses, conditions, mapping)
         VALUES ($1, $2, 'books', 'webhook', 'http://books.invalid/hook', '\\x00',
                 ARRAY['completed'], '{}', '{}')",
    )
    .bind(IntegrationId::new())
    .bind(tenant)
    .execute(pool)
    .await?;
    let mut books = Books {
        sales: Vec::new(),
        events: Vec::new(),
    };
    for n in 0..SALES {
        let (id, sale) = (SaleId::new(), sample_sale(&format!("pos-{n}")));
        insert_sale(pool, tenant, id, &sale).await?;
        books
            .events
            .push(event(tenant, id, Trigger::Created, "completed", sale));
        books.sales.push(id);
    }
    Ok(books)
}

/// The events of `range` as ingest's relay sends them: the first
/// [`BUNDLED`] of all as one bundle, the others one by one.
fn messages(books: &Books, range: std::ops::Range<usize>) -> Vec<OutgoingMessage> {
    let one = |n: usize| message(&books.events[n], BTreeMap::new());
    let bundled: Vec<_> = range.clone().filter(|n| *n < BUNDLED).map(one).collect();
    let mut out = bundle::bundle(bundled, |_| true);
    out.extend(range.filter(|n| *n >= BUNDLED).map(one));
    out
}

/// Makes the database refuse every decision about `sale`.
async fn refuse_decisions_about(pool: &PgPool, sale: SaleId) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'sale % is poison', NEW.sale_id; END $$",
    )
    .execute(pool)
    .await?;
    // A uuid, so formatting it into the DDL is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON sale_decisions FOR EACH ROW
         WHEN (NEW.sale_id = '{sale}') EXECUTE FUNCTION refuse()"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// Decisions per sale.
async fn decided(pool: &PgPool) -> anyhow::Result<BTreeMap<SaleId, i64>> {
    let rows: Vec<(SaleId, i64)> =
        sqlx::query_as("SELECT sale_id, count(*) FROM sale_decisions GROUP BY sale_id")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The sales the forward commands taken from the tap are for, each as often
/// as it was commanded.
fn commanded(forwards: &common::Received) -> anyhow::Result<Vec<SaleId>> {
    let mut sales = forwards
        .iter()
        .map(|(_, body)| Ok(Envelope::<ForwardCommand>::decode(body)?.sale_id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    sales.sort();
    Ok(sales)
}

/// Messages left in `salesync.sale-events` (with no consumer, unacked ones
/// are back in the queue).
async fn left_in_queue(ch: &lapin::Channel) -> anyhow::Result<u32> {
    let q = ch
        .queue_declare(
            topology::Q_SALE_EVENTS.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

async fn stop(
    shutdown: CancellationToken,
    service: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), service).await???;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_database_refuses_is_dead_lettered_and_the_rest_decided_once() {
    in_sandbox(|sandbox| async move { refused(&sandbox).await }).await;
}

async fn refused(sandbox: &Sandbox) -> anyhow::Result<()> {
    let pool = salesync_core::db::connect_and_migrate(&sandbox.db_url, 2).await?;
    let books = insert_books(&pool).await?;
    let poison = books.sales[POISON];
    refuse_decisions_about(&pool, poison).await?;
    let (conn, ch, publisher) = open_tap(sandbox).await?;
    // All queued before the service starts: it finds them in one batch.
    publisher.publish_all(&messages(&books, 0..SALES)).await?;
    let shutdown = CancellationToken::new();
    let service = start_filter(sandbox, &shutdown)?;

    let quiet = Duration::from_secs(1);
    let forwards = take(&ch, TAP, SALES - 1, quiet, PATIENCE).await?;
    let dead = take(&ch, topology::Q_DEAD, 1, quiet, PATIENCE).await?;
    stop(shutdown, service).await?;

    // The poison event alone, with the database's reason and its own body
    // although it came in a bundle.
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (headers, body) = &dead[0];
    let header = |k: &str| headers.get(k).map(String::as_str);
    assert_eq!(
        header("x-dead-reason"),
        Some(format!("refused by the database: sale {poison} is poison (SQLSTATE P0001)").as_str())
    );
    assert_eq!(body, &books.events[POISON].to_bytes());
    assert_eq!(header("x-original-queue"), Some(topology::Q_SALE_EVENTS));
    assert_eq!(header("x-original-routing-key"), Some("sale.ingested"));

    // Every other event decided and forwarded exactly once.
    let others: BTreeSet<SaleId> = books
        .sales
        .iter()
        .copied()
        .filter(|s| *s != poison)
        .collect();
    let decided = decided(&pool).await?;
    assert_eq!(decided.keys().copied().collect::<BTreeSet<_>>(), others);
    assert!(decided.values().all(|n| *n == 1), "{decided:?}");
    assert_eq!(
        commanded(&forwards)?,
        others.iter().copied().collect::<Vec<_>>()
    );
    assert_eq!(left_in_queue(&ch).await?, 0, "the queue drained");
    let _ = conn.close(200, "bye".into()).await;
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_dead_letters_nothing_and_everything_is_decided_after_it() {
    in_sandbox(|sandbox| async move { outage(&sandbox).await }).await;
}

async fn outage(sandbox: &Sandbox) -> anyhow::Result<()> {
    let pool = salesync_core::db::connect_and_migrate(&sandbox.db_url, 2).await?;
    let books = insert_books(&pool).await?;
    pool.close().await;
    let (conn, ch, publisher) = open_tap(sandbox).await?;
    let shutdown = CancellationToken::new();
    let service = start_filter(sandbox, &shutdown)?;
    // The service works: the last event is decided and forwarded.
    publisher
        .publish_all(&messages(&books, SALES - 1..SALES))
        .await?;
    let quiet = Duration::from_millis(200);
    let mut forwards = take(&ch, TAP, 1, quiet, PATIENCE).await?;
    anyhow::ensure!(forwards.len() == 1, "not working before the outage");

    // The rest arrive while the database is down, and wait out the outage
    // in the consumer's retries — long enough for several rounds of them.
    sandbox.set_database_up(false).await?;
    publisher
        .publish_all(&messages(&books, 0..SALES - 1))
        .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dead_in_outage = take(&ch, topology::Q_DEAD, 0, quiet, quiet).await?;
    sandbox.set_database_up(true).await?;

    forwards.extend(take(&ch, TAP, SALES - 1, Duration::from_secs(1), PATIENCE).await?);
    let dead_after = take(&ch, topology::Q_DEAD, 0, quiet, quiet).await?;
    stop(shutdown, service).await?;

    assert_eq!(dead_in_outage.len(), 0, "dead-lettered during the outage");
    assert_eq!(dead_after.len(), 0, "dead-lettered after the outage");
    let pool = PgPool::connect(&sandbox.db_url).await?;
    let decided = decided(&pool).await?;
    assert_eq!(
        decided.keys().copied().collect::<BTreeSet<_>>(),
        books.sales.iter().copied().collect::<BTreeSet<_>>()
    );
    assert!(decided.values().all(|n| *n == 1), "{decided:?}");
    let mut all = books.sales.clone();
    all.sort();
    assert_eq!(commanded(&forwards)?, all, "each forwarded exactly once");
    assert_eq!(left_in_queue(&ch).await?, 0, "the queue drained");
    let _ = conn.close(200, "bye".into()).await;
    pool.close().await;
    Ok(())
}
