//! salesync-demo: the whole system on this machine in one run.
//!
//! Starts the five real service binaries on a private database and vhost, two
//! tenants and two sample downstream systems, then a simulated POS publishes
//! sales and the demo shows where each one went:
//!
//! - "Corner Bakery" (tenant A, the POS) forwards every sale to its accounting
//!   package (which fails each first attempt with 503, so every sale is
//!   retried once), gift-shop sales (SKU MUG-004) to an invoicing package that
//!   rejects them (422, dead-lettered with the reason), and completed tea sales
//!   (TEA-002) to tenant B's salesync;
//! - "Tea Wholesale" (tenant B) processes what it received; the status-poller
//!   carries "processed" back to A as "fulfilled", and A's status webhook hears
//!   about it, signed.
//!
//! Ends with a summary read from the database and the targets. Then the
//! partner scenario (issue 17) on the same deployment: "Energy B" publishes
//! a catalogue and gives "Door Sales A" an Agent token; A tests the
//! connection, imports, maps (the mapping check flags one question A left
//! unmapped, and A fixes it), sells, and sees B's "processed" come back as
//! "completed".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use salesync_core::domain::ids::IntegrationId;
use salesync_core::integration::{Conditions, Mapping};
use salesync_e2e::{Behaviour, IntegrationInput, ServiceKind, Stack, StackOptions, TestTarget};

#[derive(Parser, Debug)]
#[command(about = "Run salesync end to end: services, two tenants, a POS and sample targets")]
struct Args {
    /// How many sales the simulated POS publishes.
    #[arg(long, env = "DEMO_SALES", default_value_t = 1000)]
    sales: usize,
    /// Sales per batch request (the rest of the POS traffic is single requests).
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// How many sales the reseller places in the partner scenario.
    #[arg(long, env = "DEMO_ORDERS", default_value_t = 40)]
    orders: usize,
    /// Keep everything running after the summary until Ctrl-C (to look at the
    /// RabbitMQ dashboard and the /metrics endpoints).
    #[arg(long)]
    keep_running: bool,
}

const TEA: &str = "TEA-002";
const MUG: &str = "MUG-004";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();

    step(
        "starting ingest (data plane), console (control plane), condition-filter, forwarder and status-poller",
    );
    let stack = Stack::start(
        StackOptions::default()
            .env(ServiceKind::Forwarder, "RETRY_DELAYS", "500ms,1s,2s")
            .env(ServiceKind::Forwarder, "MAX_ATTEMPTS", "4")
            .env(ServiceKind::Forwarder, "REQUEST_TIMEOUT", "2s")
            // The accounting package fails every first attempt (to show
            // retries); the default breaker stays closed, as its retries succeed.
            .env(ServiceKind::StatusPoller, "POLL_INTERVAL", "1s"),
    )
    .await
    .context("starting the services")?;
    println!("    ingest (sales API) at {}", stack.ingest_url());
    println!("    console (management API) at {}", stack.console_url());
    println!(
        "    web console at {}/ui/ (sign in with the operator token {})",
        stack.console_url(),
        stack.admin_token()
    );
    println!(
        "    service logs in {}",
        stack.services.logs_dir().display()
    );

    step("creating tenants, targets and integrations");
    let shop = stack.tenant("Corner Bakery").await?;
    let wholesale = stack.tenant("Tea Wholesale").await?;
    let wholesale_token = stack.integration_token(&wholesale).await?;
    let accounting = TestTarget::start(Behaviour::FailTimes(1, 503)).await?;
    let invoicing = TestTarget::start(Behaviour::Always(422)).await?;
    let shop_webhook = TestTarget::start(Behaviour::Ok).await?;

    let to_accounting = shop
        .api
        .create_integration(&IntegrationInput::webhook(
            "Accounting (books every sale)",
            &accounting.url("/sales"),
        ))
        .await?;
    accounting.set_secret(&to_accounting.signing_secret);
    let to_invoicing = shop
        .api
        .create_integration(&IntegrationInput {
            conditions: Conditions {
                skus_any: vec![MUG.into()],
                ..Conditions::default()
            },
            ..IntegrationInput::webhook("Invoicing (gift shop only)", &invoicing.url("/invoices"))
        })
        .await?;
    invoicing.set_secret(&to_invoicing.signing_secret);
    let to_wholesale = shop
        .api
        .create_integration(&IntegrationInput {
            trigger_statuses: vec!["completed".into()],
            conditions: Conditions {
                skus_any: vec![TEA.into()],
                ..Conditions::default()
            },
            mapping: Mapping {
                skus: BTreeMap::from([(TEA.into(), "WS-TEA-GREEN".into())]),
                ..Mapping::default()
            },
            poll_status: true,
            status_map: BTreeMap::from([("processed".into(), "fulfilled".into())]),
            final_statuses: vec!["processed".into()],
            ..IntegrationInput::salesync("Tea Wholesale", &stack.ingest_url(), &wholesale_token)
        })
        .await?;
    let hook = shop
        .api
        .set_webhook(&shop_webhook.url("/hooks/sale-status"))
        .await?;
    shop_webhook.set_secret(&hook.secret);
    println!(
        "    Corner Bakery → accounting (all sales), invoicing (MUG-004), Tea Wholesale (completed TEA-002)"
    );

    step(&format!("the POS publishes {} sales", args.sales));
    let bar = progress_bar(args.sales as u64, "sales accepted");
    let mut i = 0;
    while i < args.sales {
        // Every other chunk goes as single requests, the rest as batches.
        let n = args.batch.min(args.sales - i);
        let chunk: Vec<_> = (i..i + n)
            .map(|k| salesync_e2e::sales::mixed("pos", k))
            .collect();
        if (i / args.batch) % 2 == 0 {
            let answer = shop.api.post_batch(&chunk).await?;
            let refused: Vec<_> = answer.results.iter().filter(|r| r.id.is_none()).collect();
            anyhow::ensure!(refused.is_empty(), "batch items refused: {refused:?}");
        } else {
            for sale in &chunk {
                shop.api.post_sale(sale).await?;
            }
        }
        i += n;
        bar.set_position(i as u64);
    }
    bar.finish();

    step("waiting for every sale to reach its targets (retries included)");
    let spinner = progress_spinner("deliveries settling");
    stack.wait_quiet(Duration::from_secs(300)).await?;
    spinner.finish_with_message("all deliveries settled");

    step("Tea Wholesale processes the orders it received");
    let received: Vec<String> = sqlx::query_scalar(
        "SELECT target_ref FROM deliveries WHERE integration_id = $1 AND state = 'delivered'",
    )
    .bind(to_wholesale.id)
    .fetch_all(stack.db.pool())
    .await?;
    let bar = progress_bar(received.len() as u64, "orders processed at Tea Wholesale");
    for chunk in received.chunks(200) {
        for order in wholesale.api.lookup(chunk).await? {
            wholesale
                .api
                .set_status(order.id, "processed", Some("shipped by the principal"))
                .await?;
            bar.inc(1);
        }
    }
    bar.finish();

    step("status-poller carries the new status back to Corner Bakery");
    let spinner = progress_spinner("statuses propagating");
    let expected = received.len() as i64;
    salesync_e2e::wait_until(
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async { count_history(&stack, to_wholesale.id).await.unwrap_or(0) >= expected },
    )
    .await
    .map_err(|_| anyhow::anyhow!("statuses did not come back within 120 s"))?;
    stack.wait_quiet(Duration::from_secs(120)).await?;
    spinner.finish_with_message("statuses propagated");

    summary(
        &stack,
        &Ids {
            accounting: to_accounting.id,
            invoicing: to_invoicing.id,
            wholesale: to_wholesale.id,
        },
        &[
            ("accounting", &accounting),
            ("invoicing", &invoicing),
            ("Corner Bakery status webhook", &shop_webhook),
        ],
    )
    .await?;
    partner_demo(&stack, args.orders).await?;
    println!("\n    total time {:.1}s", started.elapsed().as_secs_f64());

    if args.keep_running {
        println!(
            "\n    still running (ingest at {}, web console at {}/ui/, operator token {}); Ctrl-C to stop",
            stack.ingest_url(),
            stack.console_url(),
            stack.admin_token()
        );
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

struct Ids {
    accounting: IntegrationId,
    invoicing: IntegrationId,
    wholesale: IntegrationId,
}

/// How many of the sales sent to `integration` have heard its "processed"
/// (the first status each hears is the one the copy was created with).
async fn count_history(stack: &Stack, integration: IntegrationId) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM sale_status_history
         WHERE origin = 'integration' AND integration_id = $1 AND target_status = 'processed'",
    )
    .bind(integration)
    .fetch_one(stack.db.pool())
    .await?)
}

async fn summary(stack: &Stack, ids: &Ids, targets: &[(&str, &TestTarget)]) -> anyhow::Result<()> {
    let db = stack.db.pool();
    step("summary");
    let all_sales: i64 = sqlx::query_scalar("SELECT count(*) FROM sales")
        .fetch_one(db)
        .await?;
    let shop_sales: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sales s JOIN tenants t ON t.id = s.tenant_id WHERE t.name = 'Corner Bakery'",
    )
    .fetch_one(db)
    .await?;
    println!(
        "    sales accepted from the POS       {shop_sales:>6}   (all tenants incl. Tea Wholesale's received orders: {all_sales})"
    );

    for (name, id) in [
        ("accounting", ids.accounting),
        ("invoicing", ids.invoicing),
        ("Tea Wholesale", ids.wholesale),
    ] {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM deliveries WHERE integration_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(id)
        .fetch_all(db)
        .await?;
        let states: Vec<String> = rows.iter().map(|(s, n)| format!("{n} {s}")).collect();
        println!(
            "    forwarded to {name:<20} {}",
            if states.is_empty() {
                "none".into()
            } else {
                states.join(", ")
            }
        );
    }

    let skipped: Vec<(String, i64)> = sqlx::query_as(
        "SELECT reason, count(*) FROM sale_decisions WHERE NOT forwarded GROUP BY reason ORDER BY count(*) DESC",
    )
    .fetch_all(db)
    .await?;
    println!("    filtered out, by reason:");
    for (reason, n) in skipped {
        println!("      {n:>6}  {reason}");
    }

    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM delivery_attempts WHERE outcome = 'retry'")
            .fetch_one(db)
            .await?;
    println!("    attempts retried (503, timeouts)  {retried:>6}");
    let dead: Vec<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(dead_reason, '?'), count(*) FROM deliveries WHERE state = 'dead' GROUP BY 1 ORDER BY 2 DESC",
    )
    .fetch_all(db)
    .await?;
    println!("    dead-lettered, by reason:");
    for (reason, n) in dead {
        println!("      {n:>6}  {reason}");
    }
    let dlq = stack.broker().await?;
    let dlq_depth = dlq
        .queue_depth(salesync_core::amqp::topology::Q_DEAD)
        .await?;
    dlq.close().await;
    println!("    messages waiting in salesync.dead {dlq_depth:>6}");

    let propagated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sale_status_history WHERE origin = 'integration'")
            .fetch_one(db)
            .await?;
    let fulfilled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sales WHERE status = 'fulfilled'")
            .fetch_one(db)
            .await?;
    println!(
        "    statuses carried back             {propagated:>6}   (Corner Bakery sales now 'fulfilled': {fulfilled})"
    );

    println!("    at the targets:");
    for (name, t) in targets {
        let attempts = t.attempts_per_key();
        // A sale is booked twice if the target accepted the same key twice.
        let mut accepted: BTreeMap<String, u32> = BTreeMap::new();
        for r in t.requests() {
            if let (Some(key), true) = (r.idempotency_key, (200..300).contains(&r.answered)) {
                *accepted.entry(key).or_default() += 1;
            }
        }
        let twice_accepted = accepted.values().filter(|n| **n > 1).count();
        println!(
            "      {name:<30} {:>5} requests, {:>5} distinct sales, {} bad signatures{}",
            t.total_requests(),
            attempts.len(),
            t.bad_signatures(),
            if twice_accepted > 0 {
                format!(", {twice_accepted} accepted twice!")
            } else {
                String::new()
            },
        );
    }
    Ok(())
}

fn step(what: &str) {
    println!("\n==> {what}");
}

fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("    [{bar:40}] {pos}/{len} {msg} ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn progress_spinner(what: &str) -> ProgressBar {
    let s = ProgressBar::new_spinner();
    s.set_message(what.to_string());
    s.enable_steady_tick(Duration::from_millis(120));
    s
}

/// The partner scenario: each step through the API, as its users do it.
async fn partner_demo(stack: &Stack, orders: usize) -> anyhow::Result<()> {
    use reqwest::{Method, StatusCode};
    use salesync_e2e::partner::{self, A_FLOW, FIXED, GREEN, ProviderAddress, expect};
    use serde_json::{Value, json};

    step("partner scenario: Energy B publishes its catalogue for Door Sales A");
    let b = stack.tenant("Energy B").await?;
    let a = stack.tenant("Door Sales A").await?;
    let provider = partner::set_up_provider(&b.api).await?;
    println!(
        "    products {FIXED} and {GREEN}, flow '{}', organization 'Shop A' granted both",
        partner::B_FLOW
    );
    println!(
        "    Agent 'shop-a' with an integration-only token (shown once): {}…",
        &provider.agent_token[..12.min(provider.agent_token.len())]
    );

    step("Door Sales A adds the integration, tests it, imports and maps");
    let address = ProviderAddress {
        ingest_url: stack.ingest_url(),
        console_url: stack.console_url(),
    };
    let partial = json!({
        "flows": {A_FLOW: partner::B_FLOW},
        "questions": {"iban": {"from_question": {"question": "bank_account"}}},
    });
    let (id, check) =
        partner::set_up_reseller(&a.api, &address, &provider.agent_token, &partial).await?;
    let test = expect(
        &a.api,
        Method::POST,
        &format!("/v1/integrations/{id}/test-connection"),
        &Value::Null,
        StatusCode::OK,
    )
    .await?;
    println!(
        "    test connection: {}",
        test["message"].as_str().unwrap_or("?")
    );
    let imports = expect(
        &a.api,
        Method::GET,
        &format!("/v1/integrations/{id}/imports"),
        &Value::Null,
        StatusCode::OK,
    )
    .await?;
    println!(
        "    imported: {}",
        imports["products"].as_array().map_or(0, Vec::len)
    );
    println!(
        "    mapping check flags {} mismatch(es):",
        check["mismatches"].as_array().map_or(0, Vec::len)
    );
    for m in check["mismatches"].as_array().into_iter().flatten() {
        println!("      - {}", m["message"].as_str().unwrap_or("?"));
    }
    let fixed = expect(
        &a.api,
        Method::PUT,
        &format!("/v1/integrations/{id}/mappings"),
        &partner::a_mapping(),
        StatusCode::OK,
    )
    .await?;
    anyhow::ensure!(
        fixed["mismatches"] == json!([]),
        "the fixed mapping still mismatches: {fixed}"
    );
    println!("    A maps 'term' from its 'looptijd' (1j → 1y, 3j → 3y): 0 mismatches");

    step(&format!(
        "Door Sales A sells {orders} contracts (forwarded: paid, {FIXED})"
    ));
    let bar = progress_bar(orders as u64, "sales accepted");
    for i in 0..orders {
        let (status, product) = match i % 4 {
            0 => ("open", FIXED),
            1 => ("paid", GREEN),
            _ => ("paid", FIXED),
        };
        a.api
            .post_sale(&partner::a_sale(
                &format!("door-{i:04}"),
                status,
                A_FLOW,
                product,
            ))
            .await?;
        bar.inc(1);
    }
    bar.finish();
    stack.wait_quiet(Duration::from_secs(120)).await?;

    step("Energy B processes the orders it received");
    let received: Vec<String> = sqlx::query_scalar(
        "SELECT target_ref FROM deliveries WHERE integration_id = $1 AND state = 'delivered'",
    )
    .bind(id)
    .fetch_all(stack.db.pool())
    .await?;
    for chunk in received.chunks(200) {
        for order in b.api.lookup(chunk).await? {
            b.api
                .set_status(order.id, "processed", Some("contract signed"))
                .await?;
        }
    }
    let spinner = progress_spinner("statuses propagating");
    let expected = received.len() as i64;
    salesync_e2e::wait_until(
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async { count_history(stack, id).await.unwrap_or(0) >= expected },
    )
    .await
    .map_err(|_| anyhow::anyhow!("statuses did not come back within 120 s"))?;
    spinner.finish_with_message("statuses propagated");

    step("partner summary");
    let db = stack.db.pool();
    let decisions: Vec<(bool, String, i64)> = sqlx::query_as(
        "SELECT forwarded, reason, count(*) FROM sale_decisions WHERE integration_id = $1
         GROUP BY 1, 2 ORDER BY 1 DESC, 3 DESC",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    for (forwarded, reason, n) in decisions {
        println!(
            "    {n:>6}  {}",
            if forwarded {
                "forwarded to Energy B".to_string()
            } else {
                format!("not forwarded: {reason}")
            }
        );
    }
    let at_b: Vec<(Value, Value)> = sqlx::query_as(
        "SELECT sale->'flow', sale->'lines'->0->'answers' FROM sales WHERE tenant_id = $1 LIMIT 1",
    )
    .bind(b.id)
    .fetch_all(db)
    .await?;
    if let Some((flow, answers)) = at_b.first() {
        println!("    an order at Energy B: flow {flow}, answers {answers}");
    }
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sales WHERE tenant_id = $1 AND status = 'completed'",
    )
    .bind(a.id)
    .fetch_one(db)
    .await?;
    println!(
        "    {} orders at Energy B, processed; {completed} of Door Sales A's sales now 'completed'",
        received.len()
    );
    Ok(())
}
