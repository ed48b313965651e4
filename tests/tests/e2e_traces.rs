//! Traces leave the process. The four services export to an in-test OTLP/HTTP
//! collector (`OtlpReceiver`):
//!
//! - one sale is one trace through ingest, condition-filter and forwarder,
//!   and the target's request carries that trace's `traceparent`;
//! - the status change status-poller finds continues the same trace (the
//!   sale's trace context is stored with its delivery) into ingest, which
//!   applies it, and a stopping status-poller sends its spans on the way
//!   out (its batch delay is an hour: only the shutdown flush can);
//! - a sale A forwards to tenant B's salesync stays one trace: B's ingest
//!   request is a child of A's forwarder span, and B's sale goes on through
//!   condition-filter in it; the console exports its requests' spans
//!   (`service.name` console), and its calls to a provider's console
//!   (test connection, imports) continue the caller's trace;
//! - a collector that takes the connection and never answers costs the data
//!   path nothing: every sale still arrives, once, and every service still
//!   stops gracefully.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use salesync_core::domain::ids::{SaleId, TenantId};
use salesync_e2e::otlp::trace_id_of;
use salesync_e2e::partner::{A_FLOW, FIXED, ProviderAddress, Scenario, a_sale};
use salesync_e2e::sales::sale;
use salesync_e2e::{
    Behaviour, Collector, IntegrationInput, OtlpReceiver, ReceivedSpan, ServiceKind, Stack,
    StackOptions, TestTarget, wait_for, wait_until,
};

const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// Every service exports to `collector`, in batches every `delay_ms`.
fn exporting_to(collector: &OtlpReceiver, delay_ms: &str) -> StackOptions {
    ServiceKind::ALL
        .into_iter()
        .fold(StackOptions::default(), |options, kind| {
            options
                .env(kind, "OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint())
                .env(kind, "OTEL_BSP_SCHEDULE_DELAY", delay_ms)
        })
}

fn is_of_sale(span: &ReceivedSpan, sale: SaleId) -> bool {
    span.attributes.get("sale_id") == Some(&sale.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sale_is_one_trace_and_shutdown_flushes() {
    let collector = OtlpReceiver::start(Collector::Accept)
        .await
        .expect("collector");
    // status-poller's spans can only leave through the shutdown flush: an
    // hour's delay, and a queue and batch larger than the test fills.
    let options = exporting_to(&collector, "200")
        .env(
            ServiceKind::StatusPoller,
            "OTEL_BSP_SCHEDULE_DELAY",
            "3600000",
        )
        .env(
            ServiceKind::StatusPoller,
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "1000000",
        )
        .env(
            ServiceKind::StatusPoller,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "1000000",
        );
    let mut stack = Stack::start(options).await.expect("stack");
    let tenant = stack.tenant("pos").await.expect("tenant");
    let target = TestTarget::start(Behaviour::Ok).await.expect("target");
    tenant
        .api
        .create_integration(&IntegrationInput {
            poll_status: true,
            status_url: Some(target.status_url()),
            status_map: [("processed".to_string(), "completed".to_string())].into(),
            final_statuses: vec!["processed".into()],
            ..IntegrationInput::webhook("ledger", &target.url("/ledger"))
        })
        .await
        .expect("integration");

    let posted = tenant
        .api
        .post_sale(&sale("t-1", "paid", "COF-001"))
        .await
        .expect("post sale");
    let delivered = wait_for(WAIT, POLL, || async {
        // The only sale: the first request to the ledger is its delivery.
        target.requests().into_iter().find(|r| r.path == "/ledger")
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "sale never reached the target ({e})\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    });
    let traceparent = delivered
        .traceparent
        .clone()
        .expect("the target's request carries a traceparent");
    let trace = trace_id_of(&traceparent)
        .unwrap_or_else(|| panic!("malformed traceparent {traceparent:?}"))
        .to_string();

    // ingest (the request), condition-filter (the event) and forwarder (the
    // delivery) each exported spans of that one trace.
    let in_trace = |service: &str| -> Vec<ReceivedSpan> {
        collector
            .spans_of(service)
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect()
    };
    let services = ["ingest", "condition-filter", "forwarder"];
    wait_until(WAIT, POLL, || async {
        services.iter().all(|s| !in_trace(s).is_empty())
    })
    .await
    .unwrap_or_else(|e| {
        let seen: Vec<(String, String, String)> = collector
            .spans()
            .into_iter()
            .map(|s| (s.service, s.name, s.trace_id))
            .collect();
        panic!(
            "not every service exported spans of trace {trace} ({e}); received: {seen:#?}\ningest:\n{}",
            stack.services.log_tail(ServiceKind::Ingest, 20)
        )
    });
    assert!(
        in_trace("ingest").iter().any(|s| s.name == "http_request"),
        "{:#?}",
        in_trace("ingest")
    );
    for service in ["condition-filter", "forwarder"] {
        assert!(
            in_trace(service).iter().any(|s| is_of_sale(s, posted.id)),
            "{service} has no span of sale {}: {:#?}",
            posted.id,
            in_trace(service)
        );
    }
    // The sale's spans all belong to this trace, wherever they were made.
    let strays: Vec<ReceivedSpan> = collector
        .spans()
        .into_iter()
        .filter(|s| is_of_sale(s, posted.id) && s.trace_id != trace && s.service != "ingest")
        .collect();
    assert!(
        strays.is_empty(),
        "spans of the sale in other traces: {strays:#?}"
    );

    // The target reports the sale processed; status-poller finds it and
    // ingest applies it.
    let key = delivered.idempotency_key.clone().expect("idempotency key");
    target.set_status(&key, "processed");
    wait_until(WAIT, POLL, || async {
        tenant
            .api
            .get_sale(posted.id)
            .await
            .is_ok_and(|v| v.status == "completed")
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "status never applied ({e})\n{}",
            stack.services.log_tail(ServiceKind::StatusPoller, 30)
        )
    });
    assert!(
        collector.spans_of("status-poller").is_empty(),
        "status-poller exported before its shutdown"
    );

    // A graceful stop flushes what is queued.
    let ended = stack.services.stop(ServiceKind::StatusPoller).await;
    assert!(
        ended.iter().all(|s| s.success()),
        "status-poller did not stop cleanly: {ended:?}\n{}",
        stack.services.log_tail(ServiceKind::StatusPoller, 30)
    );
    let update = wait_for(WAIT, POLL, || async {
        collector
            .spans_of("status-poller")
            .into_iter()
            .find(|s| s.name == "status_update" && is_of_sale(s, posted.id))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "status-poller's spans never arrived after its stop ({e}); it sent {} spans",
            collector.spans_of("status-poller").len()
        )
    });
    // The change is part of the sale's trace, and so is ingest applying it.
    assert_eq!(
        update.trace_id, trace,
        "status-poller's update is not in the sale's trace"
    );
    wait_until(WAIT, POLL, || async {
        collector
            .spans_of("ingest")
            .iter()
            .any(|s| s.trace_id == update.trace_id && is_of_sale(s, posted.id))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "ingest has no span of status trace {} ({e})",
            update.trace_id
        )
    });
    assert_eq!(collector.undecodable(), 0);
}

/// The spans of `trace`, by service.
fn trace_of(collector: &OtlpReceiver, trace: &str) -> Vec<ReceivedSpan> {
    collector
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_forwarded_to_another_tenant_is_one_trace_and_the_console_traces_too() {
    let collector = OtlpReceiver::start(Collector::Accept)
        .await
        .expect("collector");
    let stack = Stack::start(exporting_to(&collector, "200"))
        .await
        .expect("stack");
    let b = stack.tenant("Energy B").await.expect("tenant B");
    let a = stack.tenant("Shop A").await.expect("tenant A");
    let address = ProviderAddress {
        ingest_url: stack.ingest_url(),
        console_url: stack.console_url(),
    };
    // A's setup goes through the console: test connection and imports call
    // B's console with A's trace context.
    let scenario = Scenario::set_up(&stack, &a, &b, &address).await;

    let console_requests = |tenant: TenantId| -> Vec<ReceivedSpan> {
        collector
            .spans_of("console")
            .into_iter()
            .filter(|s| {
                s.name == "http_request"
                    && s.attributes.get("tenant_id") == Some(&tenant.to_string())
            })
            .collect()
    };
    // A provider call made while serving A continues A's request's trace:
    // B's console request is a child of a span of A's request. Spans arrive
    // in batches, so wait for the pair rather than for any spans.
    let b_in_a = || -> Vec<ReceivedSpan> {
        let a_traces: Vec<String> = console_requests(a.id)
            .into_iter()
            .map(|s| s.trace_id)
            .collect();
        console_requests(b.id)
            .into_iter()
            .filter(|s| a_traces.contains(&s.trace_id) && !s.parent_span_id.is_empty())
            .collect()
    };
    wait_until(WAIT, POLL, || async { !b_in_a().is_empty() })
        .await
        .unwrap_or_else(|e| {
            let seen: Vec<(String, String)> = collector
                .spans_of("console")
                .into_iter()
                .map(|s| (s.name, format!("{:?}", s.attributes)))
                .collect();
            panic!(
                "no request to B's console in a trace of A's console requests ({e}); console sent: {seen:#?}"
            )
        });

    let posted = a
        .api
        .post_sale(&a_sale("a-traced", "paid", A_FLOW, FIXED))
        .await
        .expect("A's sale");
    // The forwarder's delivery of A's sale names the trace.
    let forward = wait_for(WAIT, POLL, || async {
        collector
            .spans_of("forwarder")
            .into_iter()
            .find(|s| s.name == "forward" && is_of_sale(s, posted.id))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "no forward span of A's sale ({e})\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    });
    let trace = forward.trace_id.clone();
    // B's ingest took the forwarded request in the same trace, and B's sale
    // went on through condition-filter in it.
    let b_tenant = b.id.to_string();
    wait_until(WAIT, POLL, || async {
        let spans = trace_of(&collector, &trace);
        let b_ingest = spans.iter().any(|s| {
            s.service == "ingest"
                && s.name == "http_request"
                && s.attributes.get("tenant_id") == Some(&b_tenant)
        });
        let b_filtered = spans.iter().any(|s| {
            s.service == "condition-filter" && s.attributes.get("tenant_id") == Some(&b_tenant)
        });
        b_ingest && b_filtered
    })
    .await
    .unwrap_or_else(|e| {
        let seen: Vec<(String, String, String)> = trace_of(&collector, &trace)
            .into_iter()
            .map(|s| (s.service, s.name, format!("{:?}", s.attributes)))
            .collect();
        panic!("B's ingest and condition-filter not in A's sale's trace {trace} ({e}): {seen:#?}")
    });
    let spans = trace_of(&collector, &trace);
    let b_request = spans
        .iter()
        .find(|s| {
            s.service == "ingest"
                && s.name == "http_request"
                && s.attributes.get("tenant_id") == Some(&b_tenant)
        })
        .expect("B's ingest request");
    let parent = spans
        .iter()
        .find(|s| s.span_id == b_request.parent_span_id)
        .map(|s| s.service.clone());
    assert_eq!(
        parent.as_deref(),
        Some("forwarder"),
        "B's ingest request continues the forwarder's delivery span"
    );
    // A's own ingest request is in it too: one trace from A's POST to B.
    assert!(
        spans.iter().any(|s| s.service == "ingest"
            && s.name == "http_request"
            && s.attributes.get("tenant_id") == Some(&a.id.to_string())),
        "{spans:#?}"
    );
    let _ = scenario;
    assert_eq!(collector.undecodable(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_the_data_path_nothing() {
    const SALES: usize = 100;
    let collector = OtlpReceiver::start(Collector::Hang)
        .await
        .expect("collector");
    // Small queues fill while the one export hangs: spans must be dropped,
    // never waited for.
    let options = ServiceKind::ALL
        .into_iter()
        .fold(exporting_to(&collector, "100"), |options, kind| {
            options.env(kind, "OTEL_BSP_MAX_QUEUE_SIZE", "16")
        });
    let mut stack = Stack::start(options).await.expect("stack");
    let tenant = stack.tenant("pos").await.expect("tenant");
    let target = TestTarget::start(Behaviour::Ok).await.expect("target");
    tenant
        .api
        .create_integration(&IntegrationInput::webhook("ledger", &target.url("/ledger")))
        .await
        .expect("integration");

    let posted: Vec<_> = futures::stream::iter(0..SALES)
        .map(|i| {
            let s = sale(&format!("h-{i}"), "paid", "COF-001");
            let api = tenant.api.clone();
            async move { api.post_sale(&s).await }
        })
        .buffer_unordered(8)
        .try_collect()
        .await
        .expect("every sale accepted");
    assert_eq!(posted.len(), SALES);

    wait_until(WAIT, POLL, || async {
        target.accepted_keys().len() == SALES
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{} of {SALES} sales arrived ({e})\n{}",
            target.accepted_keys().len(),
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    });
    // The exporters really were stuck on the collector all along.
    wait_until(WAIT, POLL, || async { collector.requests() > 0 })
        .await
        .expect("no export ever reached the collector");
    stack
        .wait_quiet(Duration::from_secs(30))
        .await
        .expect("quiet");
    assert_eq!(target.total_requests(), SALES, "each sale exactly once");
    assert!(
        target.attempts_per_key().values().all(|n| *n == 1),
        "{:?}",
        target.attempts_per_key()
    );
    assert!(collector.spans().is_empty());

    // A hanging collector does not hold a graceful stop hostage either.
    let ended = stack.services.stop_all().await;
    for (kind, status) in &ended {
        assert!(
            status.success(),
            "{kind} did not stop cleanly: {status}\n{}",
            stack.services.log_tail(*kind, 20)
        );
    }
}
