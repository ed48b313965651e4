//! The Grafana dashboard (deploy/grafana/salesync.json) and the alert rules
//! (deploy/prometheus/alerts.yml) against a real Prometheus: the five
//! services run on their own database and vhost, a real Prometheus (Debian's
//! `prometheus`) scrapes them and RabbitMQ's own endpoint (filtered to the
//! vhost), and traffic makes every metric exist — sales delivered, a target
//! that refuses (a dead letter), one that fails (retries, its breaker
//! opens), a paused integration. Then every panel's query, with the
//! dashboard's variables filled in, must succeed and return series; every
//! rule must load, evaluate and pass `promtool check rules`; and the
//! dead-letter, breaker and paused alerts must go off.

use std::collections::BTreeMap;
use std::time::Duration;

use salesync_e2e::prometheus::{Prometheus, promtool, workspace};
use salesync_e2e::sales::sale;
use salesync_e2e::{
    Behaviour, IntegrationInput, ServiceKind, Stack, StackOptions, TestTarget, wait_until,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);
/// RabbitMQ's Prometheus endpoint (rabbitmq_prometheus, deploy/setup.sh).
const RABBIT_DEFAULT: &str = "127.0.0.1:15692";
/// What the dashboard's variables stand for in the test: `$__rate_interval`
/// covers many 1 s scrapes; `$integration` takes all (its `allValue`).
const RATE_INTERVAL: &str = "1m";
/// The alerts the traffic must set off (pending: their `for:` has not run
/// out yet; the expression holds).
const MUST_GO_OFF: [&str; 4] = [
    "SalesyncDeadLettersRising",
    "SalesyncIntegrationDeadLetters",
    "SalesyncCircuitBreakerOpen",
    "SalesyncIntegrationPaused",
];

/// `http://host:port` → `host:port`.
fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// A config like deploy/prometheus/prometheus.yml, for this stack's ports
/// and vhost, with the repo's rule file.
fn config(stack: &Stack, vhost: &str) -> String {
    let rabbit = std::env::var("RABBITMQ_PROMETHEUS").unwrap_or_else(|_| RABBIT_DEFAULT.into());
    let services: Vec<String> = ServiceKind::ALL
        .iter()
        .flat_map(|k| stack.services.urls(*k))
        .map(|u| format!("\"{}\"", host_port(&u)))
        .collect();
    let rules = workspace().join("deploy/prometheus/alerts.yml");
    format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: salesync
    static_configs: [{{targets: [{services}]}}]
  - job_name: rabbitmq
    static_configs: [{{targets: ["{rabbit}"]}}]
  - job_name: rabbitmq-queues
    metrics_path: /metrics/detailed
    params:
      vhost: ["{vhost}"]
      family: [queue_coarse_metrics, queue_consumer_count, channel_queue_metrics, channel_queue_exchange_metrics]
    static_configs: [{{targets: ["{rabbit}"]}}]
"#,
        rules = rules.display(),
        services = services.join(", "),
    )
}

/// Every query of the dashboard: (where, PromQL as written). Panels'
/// targets (rows' nested panels too), and each query variable's
/// `label_values(metric, label)` as the series it lists.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    let id = t["refId"].as_str().unwrap_or("?");
                    out.push((format!("panel '{title}' {id}"), expr.to_string()));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(q) = v["query"]["query"].as_str() else {
            continue;
        };
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: unexpected query {q}", v["name"]));
        let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
        out.push((
            format!("variable ${}", v["name"].as_str().unwrap_or("?")),
            format!("count by ({}) ({})", label.trim(), metric.trim()),
        ));
    }
    out
}

/// Grafana's substitutions, as Grafana would make them here.
fn substitute(expr: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = expr.to_string();
    // Longest names first: `$__rate_interval` before `$__interval`.
    let mut names: Vec<_> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &vars[name])
            .replace(&format!("${name}"), &vars[name]);
    }
    assert!(
        !out.contains('$'),
        "{expr}: a variable the test does not know"
    );
    out
}

/// Runs each query once: the ones that failed or came back empty.
async fn failing(prom: &Prometheus, queries: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, q) in queries {
        match prom.query(q).await {
            Ok(series) if !series.is_empty() => {}
            Ok(_) => bad.push(format!("{name}: no series for {q}")),
            Err(e) => bad.push(format!("{name}: {e}")),
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_query_returns_series() {
    let rules_file = workspace().join("deploy/prometheus/alerts.yml");
    let checked = promtool(&["check", "rules", &rules_file.to_string_lossy()])
        .await
        .expect("promtool check rules");
    let deploy_config = workspace().join("deploy/prometheus/prometheus.yml");
    promtool(&["check", "config", &deploy_config.to_string_lossy()])
        .await
        .expect("promtool check config");
    let rules_in_file = std::fs::read_to_string(&rules_file)
        .expect("alerts.yml")
        .matches("- alert:")
        .count();
    assert!(
        checked.contains(&format!("{rules_in_file} rules found")),
        "{checked}"
    );

    let stack = Stack::start(
        StackOptions::default()
            // The paused integrations' gauge is refreshed every check.
            .env(ServiceKind::Console, "PAUSE_CHECK_INTERVAL", "300ms")
            // Two failures open a breaker, and it stays open.
            .env(ServiceKind::Forwarder, "BREAKER_MIN_CALLS", "2")
            .env(ServiceKind::Forwarder, "BREAKER_COOLDOWN", "10m"),
    )
    .await
    .expect("stack");
    let vhost = stack.vhost.as_ref().expect("own vhost").name().to_string();
    let prom = Prometheus::start(&config(&stack, &vhost))
        .await
        .expect("prometheus");
    // Every target scraped before the traffic: the dead-letter queue's
    // depth is seen at 0 first, so its rise shows.
    let up = wait_until(WAIT, POLL, || async {
        prom.targets()
            .await
            .is_ok_and(|t| !t.is_empty() && t.iter().all(|(_, health, _)| health == "up"))
    })
    .await;
    if let Err(e) = up {
        panic!("targets not up ({e}): {:#?}", prom.targets().await);
    }

    let tenant = stack.tenant("obs").await.expect("tenant");
    let ok = TestTarget::start(Behaviour::Ok).await.expect("target");
    let refusing = TestTarget::start(Behaviour::Always(400))
        .await
        .expect("target");
    let failing_target = TestTarget::start(Behaviour::Always(503))
        .await
        .expect("target");
    tenant.webhook_to(&ok, "ledger").await.expect("integration");
    let refused = tenant
        .integrate(
            &refusing,
            &IntegrationInput::webhook("strict", &refusing.url("/hook")),
        )
        .await
        .expect("integration");
    tenant
        .integrate(
            &failing_target,
            &IntegrationInput::webhook("down", &failing_target.url("/hook")),
        )
        .await
        .expect("integration");
    const SALES: usize = 4;
    for i in 0..SALES {
        tenant
            .api
            .post_sale(&sale(&format!("obs-{i}"), "paid", "COF-001"))
            .await
            .expect("post sale");
    }
    wait_until(WAIT, POLL, || async {
        ok.accepted_keys().len() >= SALES
            && stack
                .db
                .scalar("SELECT count(*) FROM deliveries WHERE state = 'dead'")
                .await
                .is_ok_and(|n| n >= SALES as i64)
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "traffic did not settle ({e})\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    });
    let (status, paused) = tenant
        .api
        .raw(
            reqwest::Method::POST,
            &format!("/v1/integrations/{}/pause", refused.id),
            Some(&json!({"reason": "observability test"})),
        )
        .await
        .expect("pause");
    assert!(status.is_success(), "pause: {status} {paused}");

    // Every panel's query returns series.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("deploy/grafana/salesync.json"))
            .expect("dashboard"),
    )
    .expect("dashboard is JSON");
    assert_eq!(dashboard["schemaVersion"], 39);
    let vars = BTreeMap::from([
        ("__rate_interval", RATE_INTERVAL.to_string()),
        ("__interval", "15s".to_string()),
        ("__range", "1h".to_string()),
        ("datasource", "prometheus".to_string()),
        ("vhost", vhost.clone()),
        ("integration", ".*".to_string()),
    ]);
    let queries: Vec<(String, String)> = dashboard_queries(&dashboard)
        .into_iter()
        .map(|(name, q)| (name, substitute(&q, &vars)))
        .collect();
    assert!(queries.len() >= 20, "{queries:#?}");
    let answered = wait_until(WAIT, POLL, || async {
        failing(&prom, &queries).await.is_empty()
    })
    .await;
    if let Err(e) = answered {
        panic!(
            "dashboard queries without series after waiting ({e}):\n{}\nprometheus:\n{}",
            failing(&prom, &queries).await.join("\n"),
            prom.log_tail(10)
        );
    }

    // Every rule of the repo's file loaded and evaluates.
    let groups = prom.api("rules", &[]).await.expect("rules");
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(rules.len(), rules_in_file, "{groups:#}");
    for rule in &rules {
        let query = rule["query"].as_str().expect("query");
        prom.query(query)
            .await
            .unwrap_or_else(|e| panic!("rule {}: {e}", rule["name"]));
    }
    let went_off = wait_until(WAIT, POLL, || async {
        let alerts = prom.alerts().await.unwrap_or_default();
        MUST_GO_OFF.iter().all(|name| {
            alerts
                .iter()
                .any(|(n, state)| n == name && (state == "pending" || state == "firing"))
        })
    })
    .await;
    if let Err(e) = went_off {
        panic!(
            "alerts did not go off ({e}); active: {:?}",
            prom.alerts().await
        );
    }
    // Evaluated without errors, every one.
    let groups = prom.api("rules", &[]).await.expect("rules");
    for g in groups["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            assert_eq!(r["health"], "ok", "rule {}: {}", r["name"], r["lastError"]);
        }
    }
}
