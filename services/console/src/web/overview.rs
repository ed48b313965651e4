//! The operators' pipeline overview: every queue (work, each retry tier,
//! dead letters) from RabbitMQ's management API, every service's replicas
//! and readiness, and the last hour's throughput and failures per minute.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use maud::{Markup, html};
use sqlx::PgPool;
use uuid::Uuid;

use super::broker::{self, QueueInfo};
use super::charts::{self, Series};
use super::page::{self, PageResult, Section, WebError, badge, trusted};
use super::session::{Session, Viewer};
use crate::AppState;

/// Minutes the charts cover.
const CHART_MINUTES: i64 = 60;

/// Per-minute counts of the last hour, oldest first: sales accepted,
/// deliveries delivered, failed attempts.
#[derive(Debug, Default)]
pub struct Throughput {
    pub accepted: Vec<u64>,
    pub delivered: Vec<u64>,
    pub failed: Vec<u64>,
}

pub async fn throughput(pool: &PgPool, tenants: Option<&[Uuid]>) -> sqlx::Result<Throughput> {
    let rows: Vec<(i32, i64, i64, i64)> = sqlx::query_as(
        "WITH m AS (SELECT generate_series(0, $2 - 1) AS ago)
         SELECT m.ago,
           (SELECT count(*) FROM sales s
             WHERE s.created_at >= date_trunc('minute', now()) - (m.ago * interval '1 minute')
               AND s.created_at < date_trunc('minute', now()) - ((m.ago - 1) * interval '1 minute')
               AND ($1::uuid[] IS NULL OR s.tenant_id = ANY($1))),
           (SELECT count(*) FROM deliveries d
             WHERE d.delivered_at >= date_trunc('minute', now()) - (m.ago * interval '1 minute')
               AND d.delivered_at < date_trunc('minute', now()) - ((m.ago - 1) * interval '1 minute')
               AND ($1::uuid[] IS NULL OR d.tenant_id = ANY($1))),
           (SELECT count(*) FROM delivery_attempts x JOIN deliveries d ON d.id = x.delivery_id
             WHERE x.outcome <> 'delivered'
               AND x.started_at >= date_trunc('minute', now()) - (m.ago * interval '1 minute')
               AND x.started_at < date_trunc('minute', now()) - ((m.ago - 1) * interval '1 minute')
               AND ($1::uuid[] IS NULL OR d.tenant_id = ANY($1)))
         FROM m ORDER BY m.ago DESC",
    )
    .bind(tenants)
    .bind(CHART_MINUTES as i32)
    .fetch_all(pool)
    .await?;
    let pick = |f: fn(&(i32, i64, i64, i64)) -> i64| -> Vec<u64> {
        rows.iter()
            .map(|r| u64::try_from(f(r)).unwrap_or(0))
            .collect()
    };
    Ok(Throughput {
        accepted: pick(|r| r.1),
        delivered: pick(|r| r.2),
        failed: pick(|r| r.3),
    })
}

/// One service's line: how many replicas answer ready.
#[derive(Debug)]
struct ServiceState {
    name: String,
    replicas: usize,
    ready: usize,
    problems: Vec<String>,
}

async fn services(state: &AppState) -> Vec<ServiceState> {
    let web = &state.web;
    let probes = web.services.iter().map(|(name, base)| async move {
        let answer = web
            .http
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        let problem = match answer {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("{base}: not ready ({})", r.status())),
            Err(e) => Some(format!("{base}: unreachable ({e})")),
        };
        (name.clone(), problem)
    });
    let mut by_name: BTreeMap<String, ServiceState> = BTreeMap::new();
    for (name, problem) in futures::future::join_all(probes).await {
        let s = by_name.entry(name.clone()).or_insert(ServiceState {
            name,
            replicas: 0,
            ready: 0,
            problems: vec![],
        });
        s.replicas += 1;
        match problem {
            None => s.ready += 1,
            Some(p) => s.problems.push(p),
        }
    }
    by_name.into_values().collect()
}

/// Forwarder replicas that heartbeated recently (they share the targets'
/// concurrency among themselves).
async fn live_forwarders(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM forwarder_replicas WHERE heartbeat_at > now() - interval '10 seconds'")
        .fetch_one(pool)
        .await
}

fn rate(r: f64) -> String {
    format!("{r:.1}/s")
}

fn queues_table(queues: &[QueueInfo]) -> Markup {
    html! {
        div.table-wrap {
            table {
                caption.sr-only { "Queues" }
                thead { tr {
                    th { "Queue" } th { "Kind" } th.num { "Depth" } th.num { "Ready" }
                    th.num { "Unacked" } th.num { "Publish" } th.num { "Deliver" } th.num { "Consumers" }
                } }
                tbody {
                    @for q in queues {
                        @let starving = q.kind() == broker::QueueKind::Work && q.consumers == 0;
                        @let dead = q.kind() == broker::QueueKind::DeadLetter && q.messages > 0;
                        tr class=[(starving || dead).then_some("sick")] {
                            td { code { (q.name) } }
                            td { (q.kind().label()) }
                            td.num { (q.messages) }
                            td.num { (q.messages_ready) }
                            td.num { (q.messages_unacknowledged) }
                            td.num { (rate(q.publish_rate())) }
                            td.num { (rate(q.deliver_rate())) }
                            td.num {
                                (q.consumers)
                                @if starving { " " (badge("bad", "no consumer")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn show(State(state): State<AppState>, session: Session) -> PageResult {
    let Viewer::Operator { tenants, .. } = &session.viewer else {
        return Err(WebError::NotFound);
    };
    let tenants: Option<Vec<Uuid>> = tenants
        .as_ref()
        .map(|t| t.iter().map(|t| *t.as_uuid()).collect());
    let queues = match &state.web.management {
        Some(m) => m
            .queues(&state.web.http)
            .await
            .map(broker::pipeline_queues)
            .map_err(|e| e.to_string()),
        None => Err("RABBITMQ_MANAGEMENT_URL is not set".to_string()),
    };
    let services = services(&state).await;
    let forwarders = live_forwarders(&state.pool).await?;
    let t = throughput(&state.pool, tenants.as_deref()).await?;
    let body = html! {
        h1 { "Pipeline overview" }
        h2 { "Queues" }
        @match &queues {
            Ok(q) if q.is_empty() => p.muted { "No salesync queues in this vhost yet." },
            Ok(q) => (queues_table(q)),
            Err(e) => div.errors role="alert" { "The queues cannot be read from RabbitMQ's management API: " (e) },
        }
        h2 { "Services" }
        @if services.is_empty() {
            p.muted { "No services are listed (SERVICE_URLS)." }
        }
        div.cards {
            @for s in &services {
                div.card {
                    h3 { (s.name) }
                    p {
                        @if s.ready == s.replicas { (badge("ok", "ready")) } @else { (badge("bad", "not ready")) }
                        " " (s.ready) " of " (s.replicas) " replicas ready"
                        @if s.name == "forwarder" { br; span.muted { (forwarders) " heartbeating" } }
                    }
                    @for p in &s.problems { p.muted { (p) } }
                }
            }
        }
        h2 { "Last hour" }
        div.side-by-side {
            div.card {
                h3 { "Throughput per minute" }
                (trusted(charts::bars("Sales accepted and deliveries delivered per minute, last hour", &[
                    Series { label: "accepted", values: &t.accepted, colour: "#1f6feb" },
                    Series { label: "delivered", values: &t.delivered, colour: "#1a7f37" },
                ])))
                p.muted { (t.accepted.iter().sum::<u64>()) " accepted, " (t.delivered.iter().sum::<u64>()) " delivered" }
            }
            div.card {
                h3 { "Failed attempts per minute" }
                (trusted(charts::bars("Failed delivery attempts per minute, last hour", &[
                    Series { label: "failed", values: &t.failed, colour: "#cf222e" },
                ])))
                p.muted { (t.failed.iter().sum::<u64>()) " failed attempts" }
            }
        }
    };
    Ok(page::ok(&session, Section::Overview, "Overview", body))
}
