//! What holds for one ingest process holds for several: a tenant's rate
//! limit is one quota however many replicas serve it, and a revoked token
//! stops working on every replica at once although each caches tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use salesync_e2e::api::Api;
use salesync_e2e::{Replicas, ServiceKind, Stack, StackOptions, wait_until};

fn two_ingests() -> StackOptions {
    StackOptions::default().replicas(Replicas::one_each().with(ServiceKind::Ingest, 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_rate_limit_holds_across_two_ingest_replicas() {
    const RATE: f64 = 20.0;
    const BURST: f64 = 20.0;
    let stack = Stack::start(
        two_ingests()
            .env(ServiceKind::Ingest, "RATE_LIMIT_PER_SEC", "20")
            .env(ServiceKind::Ingest, "RATE_LIMIT_BURST", "20"),
    )
    .await
    .expect("stack");
    let tenant = stack.tenant("limited").await.expect("tenant");
    let replicas = stack.services.urls(ServiceKind::Ingest);
    assert_eq!(replicas.len(), 2);

    // Four clients per replica ask as fast as they can for three seconds
    // (bounded in count too), far above the rate.
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    // When the last request was sent (µs since the start).
    let last_sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for url in replicas.iter().cycle().take(8) {
        let api = Api::new(url).with_token(&tenant.token);
        let (accepted, refused, last_sent) = (accepted.clone(), refused.clone(), last_sent.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..5_000 {
                let sent = started.elapsed();
                if sent >= Duration::from_secs(3) {
                    break;
                }
                last_sent.fetch_max(sent.as_micros() as u64, Ordering::Relaxed);
                let lookup = serde_json::json!({"external_ids": ["none"]});
                let (status, body) = api
                    .raw(Method::POST, "/v1/sales/lookup", Some(&lookup))
                    .await
                    .expect("request");
                match status {
                    StatusCode::OK => accepted.fetch_add(1, Ordering::Relaxed),
                    StatusCode::TOO_MANY_REQUESTS => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected {other}: {body}"),
                };
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sending = last_sent.load(Ordering::Relaxed) as f64 / 1e6;
    let (accepted, refused) = (
        accepted.load(Ordering::Relaxed) as f64,
        refused.load(Ordering::Relaxed) as f64,
    );
    // The one bucket allows its burst plus the rate over the time it was
    // asked: at most until the last answer, at least until the last request
    // was sent. Two per-process buckets would allow twice that.
    let (most, least) = (BURST + RATE * elapsed, BURST + RATE * sending);
    println!(
        "accepted {accepted}, refused {refused}; sent for {sending:.2} s, answered within {elapsed:.2} s: quota {least:.1}..{most:.1}"
    );
    assert!(refused > accepted, "the clients asked far above the rate");
    assert!(
        accepted <= most * 1.1,
        "accepted {accepted} > quota {most:.1} + 10 %"
    );
    assert!(
        accepted >= least * 0.9,
        "accepted {accepted} < quota {least:.1} - 10 %"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_working_on_every_replica_at_once() {
    // Each replica would trust a cached token for five minutes.
    let stack = Stack::start(two_ingests().env(ServiceKind::Ingest, "AUTH_CACHE_TTL", "5m"))
        .await
        .expect("stack");
    let tenant = stack.tenant("shop").await.expect("tenant");
    let pos = stack
        .api
        .create_token(stack.admin_token(), tenant.id, "pos", false)
        .await
        .expect("token");
    let replicas: Vec<Api> = stack
        .services
        .urls(ServiceKind::Ingest)
        .iter()
        .map(|u| Api::new(u))
        .collect();
    let status_on = |api: &Api, token: &str| {
        let api = api.with_token(token);
        async move {
            let lookup = serde_json::json!({"external_ids": ["none"]});
            api.raw(Method::POST, "/v1/sales/lookup", Some(&lookup))
                .await
                .expect("request")
                .0
        }
    };
    // Both replicas have seen (and cached) the token.
    for r in &replicas {
        assert_eq!(status_on(r, &pos.token).await, StatusCode::OK);
    }

    let revoke = format!("/admin/tenants/{}/tokens/{}", tenant.id, pos.token_id);
    let admin = stack.api.with_token(stack.admin_token());
    let (status, body) = admin
        .raw(Method::DELETE, &revoke, None)
        .await
        .expect("revoke");
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let revoked = Instant::now();

    // Both refuse it long before the cache would have let go of it.
    for (i, r) in replicas.iter().enumerate() {
        let refused = wait_until(
            Duration::from_secs(10),
            Duration::from_millis(10),
            || async { status_on(r, &pos.token).await == StatusCode::UNAUTHORIZED },
        )
        .await;
        assert!(
            refused.is_ok(),
            "replica {i} still accepts the revoked token"
        );
        println!(
            "replica {i} refuses the token {:?} after the revoke",
            revoked.elapsed()
        );
    }
    // The tenant's other token is untouched.
    for r in &replicas {
        assert_eq!(status_on(r, &tenant.token).await, StatusCode::OK);
    }
    // Revoking again changes nothing; an unknown token, or one of another
    // tenant, is not found.
    let (status, _) = admin
        .raw(Method::DELETE, &revoke, None)
        .await
        .expect("again");
    assert_eq!(status, StatusCode::NO_CONTENT);
    let other = stack.tenant("other").await.expect("tenant");
    let wrong = format!("/admin/tenants/{}/tokens/{}", other.id, pos.token_id);
    let (status, body) = admin
        .raw(Method::DELETE, &wrong, None)
        .await
        .expect("wrong tenant");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = stack
        .api
        .raw(Method::DELETE, &revoke, None)
        .await
        .expect("no admin token");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
