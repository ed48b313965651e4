//! The provider's (B's) catalogue change events through the API, on the
//! real PostgreSQL and (for delivery) RabbitMQ with the outbox relay and the
//! forwarder in-process (issue 17): an Agent subscribes (and only an Agent
//! may); each change to what its organization is granted files a signed
//! `catalogue.changed` callback in the change's own transaction; the
//! forwarder delivers it with a Standard Webhooks signature, retries it
//! against a failing receiver and dead-letters it against a stalling one,
//! and B's change never waits or rolls back. End to end, A's console
//! receives the callback and its copy follows B with no call from A.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use chrono::Utc;
use common::dlq::{ForwarderTask, RelayTask, pipeline_state, state_of, wait_for_state};
use common::target::{Received, Target};
use common::{ApiState, TestDb, TestVhost, call, error_fields, state, tenant};
use console::catalogue_sync;
use salesync_core::api::token_cache::TokenCache;
use salesync_core::crypto::SecretBox;
use salesync_core::domain::DeliveryId;
use salesync_core::messages::{Envelope, ForwardCommand, NO_SALE, Purpose};
use salesync_core::signing;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn product(rate: i64, active: bool) -> Value {
    json!({
        "name": "Fixed 3y",
        "price": {"amount": rate, "currency": "EUR", "vat_rate": "21"},
        "questions": [{"key": "iban", "label": "IBAN", "kind": "iban", "required": true}],
        "active": active,
    })
}

async fn put_product(app: &Router, token: &str, key: &str, rate: i64, active: bool) -> Value {
    let path = format!("/v1/products/{key}");
    let a = call(app, "PUT", &path, Some(token), Some(&product(rate, active))).await;
    assert!(a.status.is_success(), "{}", a.text);
    a.body
}

/// B's side: products `fixed-3y` and `green`, flow `door` selling both.
struct Provider {
    token: String,
}

impl Provider {
    async fn new(app: &Router, name: &str) -> Self {
        let (_, token) = tenant(app, name, false).await;
        for key in ["fixed-3y", "green"] {
            put_product(app, &token, key, 1200, true).await;
        }
        let flow = json!({"name": "Door", "products": ["fixed-3y", "green"]});
        let a = call(app, "PUT", "/v1/flows/door", Some(&token), Some(&flow)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        Self { token }
    }

    /// An organization granted `products` and flow `door`; its id.
    async fn organization(&self, app: &Router, name: &str, products: &[&str]) -> String {
        let t = Some(self.token.as_str());
        let a = call(
            app,
            "POST",
            "/v1/organizations",
            t,
            Some(&json!({"name": name})),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let org = a.body["id"].as_str().expect("id").to_string();
        self.grant(app, &org, products, &["door"]).await;
        org
    }

    async fn grant(&self, app: &Router, org: &str, products: &[&str], flows: &[&str]) {
        let grants = json!({"products": products, "flows": flows});
        let path = format!("/v1/organizations/{org}/grants");
        let a = call(app, "PUT", &path, Some(&self.token), Some(&grants)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }

    /// An Agent of the organization: (agent id, token).
    async fn agent(&self, app: &Router, org: &str, name: &str) -> (String, String) {
        let path = format!("/v1/organizations/{org}/agents");
        let body = json!({"name": name});
        let a = call(app, "POST", &path, Some(&self.token), Some(&body)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        (
            a.body["agent"]["id"].as_str().expect("id").to_string(),
            a.body["token"].as_str().expect("token").to_string(),
        )
    }
}

/// Subscribes the Agent to `url`; its secret.
async fn subscribe(app: &Router, agent_token: &str, url: &str) -> String {
    let a = call(
        app,
        "PUT",
        "/v1/integration/subscription",
        Some(agent_token),
        Some(&json!({"url": url})),
    )
    .await;
    assert!(a.status.is_success(), "{}", a.text);
    a.body["secret"].as_str().expect("secret").to_string()
}

/// The app without a token cache, so a revoked token fails at once.
fn uncached(mut st: ApiState) -> ApiState {
    st.auth.token_cache = Arc::new(TokenCache::new(Duration::ZERO, 0));
    st
}

/// Every catalogue callback filed, oldest first: (delivery id, subscription
/// id (gone with a deleted subscription), target URL, body).
async fn callbacks(pool: &PgPool) -> Vec<(DeliveryId, Option<uuid::Uuid>, String, Value)> {
    sqlx::query_as(
        "SELECT id, subscription_id, target_url, body FROM deliveries
         WHERE purpose = 'catalogue_callback' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("callbacks")
}

/// One change of a callback: (kind, key, change).
type Triple = (String, String, String);
/// The callbacks one step filed: (URL's path, changes), by URL.
type Heard = Vec<(String, Vec<Triple>)>;

/// Each callback's (kind, key, change) triples.
fn changes(body: &Value) -> Vec<Triple> {
    body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().expect("string").to_string();
            (s("kind"), s("key"), s("change"))
        })
        .collect()
}

fn triple(kind: &str, key: &str, change: &str) -> Triple {
    (kind.into(), key.into(), change.into())
}

#[tokio::test]
async fn only_an_agent_subscribes_and_only_to_its_own_subscription() {
    let db = TestDb::new().await;
    let app = common::app(uncached(state(&db.pool)));
    let b = Provider::new(&app, "Energy B").await;
    let org = b.organization(&app, "Shop A", &["fixed-3y"]).await;
    let (_, agent) = b.agent(&app, &org, "a-1").await;
    let (_, colleague) = b.agent(&app, &org, "a-2").await;
    let (c_id, _) = tenant(&app, "Other C", false).await;
    let c_integration_only = {
        let path = format!("/admin/tenants/{c_id}/tokens");
        let body = json!({"name": "pos", "integration_only": true});
        let a = call(&app, "POST", &path, Some(common::ADMIN_TOKEN), Some(&body)).await;
        a.body["token"].as_str().expect("token").to_string()
    };
    let url = "http://127.0.0.1:9/callbacks/1";
    let body = json!({"url": url});

    // Not an Agent's token: refused on each route, whatever the body.
    for token in [&b.token, &c_integration_only] {
        for (method, body) in [("PUT", Some(&body)), ("GET", None), ("DELETE", None)] {
            let a = call(
                &app,
                method,
                "/v1/integration/subscription",
                Some(token),
                body,
            )
            .await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{method}: {}", a.text);
            assert_eq!(a.body["error"]["code"], "agent_token_required");
        }
    }
    let a = call(&app, "GET", "/v1/integration/subscription", None, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);

    // A bad URL is named.
    for bad in ["ftp://x.example/cb", "not a url", "http://10.1.2.3/cb"] {
        let a = call(
            &app,
            "PUT",
            "/v1/integration/subscription",
            Some(&agent),
            Some(&json!({"url": bad})),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            a.text
        );
        assert_eq!(error_fields(&a.body), ["url"], "{bad}");
    }
    let a = call(
        &app,
        "GET",
        "/v1/integration/subscription",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "nothing stored: {}",
        a.text
    );

    // Created (201), then the URL replaced and the secret kept (200).
    let a = call(
        &app,
        "PUT",
        "/v1/integration/subscription",
        Some(&agent),
        Some(&body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let secret = a.body["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(a.body["url"], url);
    let moved = json!({"url": "http://127.0.0.1:9/callbacks/2"});
    let a = call(
        &app,
        "PUT",
        "/v1/integration/subscription",
        Some(&agent),
        Some(&moved),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["secret"], secret.as_str(), "the secret is kept");
    assert_eq!(a.body["url"], moved["url"]);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_enc FROM catalogue_subscriptions")
        .fetch_one(&db.pool)
        .await
        .expect("stored");
    let raw = secret.trim_start_matches("whsec_").as_bytes();
    assert!(
        !stored.windows(raw.len()).any(|w| w == raw),
        "the secret is encrypted at rest"
    );

    // GET shows it without the secret; another Agent has none of its own.
    let a = call(
        &app,
        "GET",
        "/v1/integration/subscription",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["url"], moved["url"]);
    assert!(
        !a.text.contains(&secret) && a.body.get("secret").is_none(),
        "{}",
        a.text
    );
    for (method, status) in [("GET", 404), ("DELETE", 404)] {
        let a = call(
            &app,
            method,
            "/v1/integration/subscription",
            Some(&colleague),
            None,
        )
        .await;
        assert_eq!(a.status.as_u16(), status, "{method}: {}", a.text);
        assert!(!a.text.contains("callbacks/2"), "{}", a.text);
    }

    // Deleted: gone; deleting again is 404; subscribing again is a new
    // subscription with a new secret.
    let a = call(
        &app,
        "DELETE",
        "/v1/integration/subscription",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    for method in ["GET", "DELETE"] {
        let a = call(
            &app,
            method,
            "/v1/integration/subscription",
            Some(&agent),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method}: {}", a.text);
    }
    let a = call(
        &app,
        "PUT",
        "/v1/integration/subscription",
        Some(&agent),
        Some(&body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_ne!(
        a.body["secret"],
        secret.as_str(),
        "a new subscription, a new secret"
    );
}

#[tokio::test]
async fn each_change_files_a_callback_for_the_subscriptions_that_can_see_it() {
    let db = TestDb::new().await;
    let app = common::app(uncached(state(&db.pool)));
    let b = Provider::new(&app, "Energy B").await;
    let shop_a = b.organization(&app, "Shop A", &["fixed-3y"]).await;
    let shop_c = b.organization(&app, "Shop C", &["green"]).await;
    let (_, a_agent) = b.agent(&app, &shop_a, "a").await;
    let (c_agent_id, c_agent) = b.agent(&app, &shop_c, "c").await;
    // Another tenant's Agent, granted a product of the same key.
    let other = Provider::new(&app, "Energy D").await;
    let shop_d = other.organization(&app, "Shop D", &["fixed-3y"]).await;
    let (_, d_agent) = other.agent(&app, &shop_d, "d").await;
    subscribe(&app, &a_agent, "http://127.0.0.1:9/a").await;
    subscribe(&app, &c_agent, "http://127.0.0.1:9/c").await;
    subscribe(&app, &d_agent, "http://127.0.0.1:9/d").await;
    assert!(
        callbacks(&db.pool).await.is_empty(),
        "subscribing changes nothing"
    );

    // B changes a rate: only the organization granted the product hears.
    let before = Utc::now();
    put_product(&app, &b.token, "fixed-3y", 1300, true).await;
    let filed = callbacks(&db.pool).await;
    assert_eq!(filed.len(), 1, "{filed:?}");
    let (id, _, url, body) = &filed[0];
    assert_eq!(url, "http://127.0.0.1:9/a");
    assert_eq!(body["type"], "catalogue.changed");
    assert_eq!(body["organization_id"], shop_a.as_str());
    assert!(
        body["event_id"].as_str().is_some_and(|e| e.len() == 36),
        "{body}"
    );
    let at = body["occurred_at"].as_str().expect("occurred_at");
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    assert!(at >= before - chrono::Duration::seconds(1), "{at}");
    assert_eq!(
        body["changes"],
        json!([{"kind": "product", "key": "fixed-3y", "change": "updated", "version": 2}])
    );
    // …with its forwarder command, committed with it.
    let commands: Vec<Envelope<ForwardCommand>> = common::dlq::outbox_commands(&db.pool).await;
    let command = commands
        .iter()
        .find(|c| c.payload.delivery_id == *id)
        .expect("the callback's command");
    assert_eq!(command.payload.purpose, Purpose::CatalogueCallback);
    assert_eq!(command.sale_id, NO_SALE);
    assert_eq!(command.payload.target_url, "http://127.0.0.1:9/a");
    assert_eq!(command.payload.target_ref, id.to_string());
    let sale: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT sale_id FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .expect("delivery");
    assert_eq!(sale, None, "about no sale");

    // The same content again: nothing to tell.
    put_product(&app, &b.token, "fixed-3y", 1300, true).await;
    let flow = json!({"name": "Door", "products": ["fixed-3y", "green"]});
    call(&app, "PUT", "/v1/flows/door", Some(&b.token), Some(&flow)).await;
    b.grant(&app, &shop_a, &["fixed-3y"], &["door"]).await;
    assert_eq!(callbacks(&db.pool).await.len(), 1, "no change, no callback");
    // A refused change files nothing either.
    let bad = json!({"products": ["fixed-3y", "nope"], "flows": []});
    let path = format!("/v1/organizations/{shop_a}/grants");
    let r = call(&app, "PUT", &path, Some(&b.token), Some(&bad)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(callbacks(&db.pool).await.len(), 1);

    // Each kind of change, and who hears it (A: fixed-3y + door; C: green + door).
    type Step<'a> = (&'a str, Vec<(&'a str, Vec<Triple>)>);
    let steps: Vec<Step> = vec![
        (
            "deactivate fixed-3y",
            vec![("/a", vec![triple("product", "fixed-3y", "deactivated")])],
        ),
        (
            "change door",
            vec![
                ("/a", vec![triple("flow", "door", "updated")]),
                ("/c", vec![triple("flow", "door", "updated")]),
            ],
        ),
        (
            "A: revoke door, grant green",
            vec![(
                "/a",
                vec![
                    triple("product", "green", "granted"),
                    triple("flow", "door", "revoked"),
                ],
            )],
        ),
        (
            "withdraw green",
            vec![
                ("/a", vec![triple("product", "green", "deleted")]),
                ("/c", vec![triple("product", "green", "deleted")]),
            ],
        ),
        (
            "withdraw door",
            vec![("/c", vec![triple("flow", "door", "deleted")])],
        ),
    ];
    for (step, want) in steps {
        let seen = callbacks(&db.pool).await.len();
        let t = Some(b.token.as_str());
        let r = match step {
            "deactivate fixed-3y" => {
                put_product(&app, &b.token, "fixed-3y", 1300, false).await;
                None
            }
            "withdraw green" => Some(call(&app, "DELETE", "/v1/products/green", t, None).await),
            "change door" => {
                let flow = json!({"name": "Door to door", "products": ["fixed-3y"]});
                Some(call(&app, "PUT", "/v1/flows/door", t, Some(&flow)).await)
            }
            "A: revoke door, grant green" => {
                b.grant(&app, &shop_a, &["fixed-3y", "green"], &[]).await;
                None
            }
            _ => Some(call(&app, "DELETE", "/v1/flows/door", t, None).await),
        };
        if let Some(r) = r {
            assert!(r.status.is_success(), "{step}: {}", r.text);
        }
        let mut new: Heard = callbacks(&db.pool).await[seen..]
            .iter()
            .map(|(_, _, url, body)| {
                (
                    url.trim_start_matches("http://127.0.0.1:9").to_string(),
                    changes(body),
                )
            })
            .collect();
        let want: Heard = want.into_iter().map(|(u, c)| (u.to_string(), c)).collect();
        new.sort();
        assert_eq!(new, want, "{step}");
    }

    // B revokes C's Agent's token: its subscription hears nothing more.
    let r = call(
        &app,
        "DELETE",
        &format!("/v1/agents/{c_agent_id}/token"),
        Some(&b.token),
        None,
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
    let seen = callbacks(&db.pool).await.len();
    // Green, withdrawn, written again: A (still granted it) hears it is
    // back; C (granted it too) does not hear anything any more.
    put_product(&app, &b.token, "green", 1500, true).await;
    b.grant(&app, &shop_c, &[], &[]).await;
    let new = &callbacks(&db.pool).await[seen..];
    assert_eq!(new.len(), 1, "a revoked Agent hears nothing: {new:?}");
    assert_eq!(new[0].2, "http://127.0.0.1:9/a");
    assert_eq!(
        new[0].3["changes"],
        json!([{"kind": "product", "key": "green", "change": "created", "version": 2}])
    );
    // Nothing ever went to the other tenant's subscription.
    assert!(
        callbacks(&db.pool)
            .await
            .iter()
            .all(|c| c.2 != "http://127.0.0.1:9/d"),
        "another tenant's change"
    );
}

/// A callback's signature, checked as a receiver would with the secret.
fn verify(secret: &str, r: &Received) -> Result<(), signing::SignatureError> {
    let h = |k: &str| r.headers.get(k).cloned().unwrap_or_default();
    signing::verify(
        secret,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &h("webhook-signature"),
        &r.raw,
        Utc::now().timestamp(),
        300,
    )
}

/// B's pipeline: the API, the outbox relay and the forwarder, on one vhost.
struct Pipeline {
    app: Router,
    _relay: RelayTask,
    _forwarder: ForwarderTask,
}

fn pipeline(db: &TestDb, vhost: &TestVhost, st: ApiState, keys: &str) -> Pipeline {
    let relay = RelayTask::start(db, vhost, &st);
    let forwarder = ForwarderTask::start(db, vhost, keys);
    Pipeline {
        app: common::app(st),
        _relay: relay,
        _forwarder: forwarder,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_forwarder_delivers_a_signed_callback_and_retries_a_failing_receiver() {
    let db = TestDb::new().await;
    let vhost = TestVhost::new().await;
    let keys = SecretBox::generate_spec("k1");
    let st = uncached(pipeline_state(&db, &vhost, &keys));
    let p = pipeline(&db, &vhost, st, &keys);
    let app = &p.app;
    let b = Provider::new(app, "Energy B").await;
    let org = b.organization(app, "Shop A", &["fixed-3y"]).await;
    let (_, agent) = b.agent(app, &org, "a").await;
    let receiver = Target::start().await;
    let secret = subscribe(app, &agent, &receiver.url).await;

    // The receiver fails twice (500, 503): B's change is done at once, and
    // the callback arrives on the third attempt, the same request each time.
    receiver.answer(&[500, 503]);
    let started = Instant::now();
    let v = put_product(app, &b.token, "fixed-3y", 1300, true).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the change never waits"
    );
    assert_eq!(v["version"], 2);
    let id = callbacks(&db.pool).await[0].0;
    wait_for_state(&db.pool, id, "delivered").await;
    let got = receiver.received();
    assert_eq!(got.len(), 3, "{got:?}");
    for r in &got {
        verify(&secret, r).expect("signed with the subscription's secret");
        assert_eq!(r.headers["webhook-id"], id.to_string());
        assert_eq!(r.raw, got[0].raw, "the same body on every attempt");
    }
    assert!(verify(&signing::generate_secret(), &got[0]).is_err());
    assert_eq!(got[0].body["type"], "catalogue.changed");
    assert_eq!(got[0].body["organization_id"], org.as_str());
    assert_eq!(
        got[0].body["changes"],
        json!([{"kind": "product", "key": "fixed-3y", "change": "updated", "version": 2}])
    );
    assert_eq!(state_of(&db.pool, id).await.1, 3, "three attempts recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalling_receiver_dead_letters_the_callback_and_never_the_change() {
    let db = TestDb::new().await;
    let vhost = TestVhost::new().await;
    let keys = SecretBox::generate_spec("k1");
    let st = uncached(pipeline_state(&db, &vhost, &keys));
    let p = pipeline(&db, &vhost, st, &keys);
    let app = &p.app;
    let b = Provider::new(app, "Energy B").await;
    let org = b.organization(app, "Shop A", &["fixed-3y"]).await;
    let (_, agent) = b.agent(app, &org, "a").await;

    // A receiver that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/cb", silent.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    subscribe(app, &agent, &url).await;

    let started = Instant::now();
    let r = call(app, "DELETE", "/v1/products/fixed-3y", Some(&b.token), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    put_product(app, &b.token, "green", 1500, true).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the changes never wait"
    );
    let id = callbacks(&db.pool).await[0].0;
    // Three attempts of 2 s each (the test forwarder's request timeout).
    wait_for_state(&db.pool, id, "dead").await;
    let (_, attempts, reason) = state_of(&db.pool, id).await;
    assert_eq!(attempts, 3, "{reason:?}");

    // B's change stands, and B sees the dead callback among its dead letters.
    let r = call(app, "GET", "/v1/products", Some(&b.token), None).await;
    let keys: Vec<&str> = r.body["products"]
        .as_array()
        .expect("products")
        .iter()
        .filter_map(|p| p["key"].as_str())
        .collect();
    assert_eq!(keys, ["green"], "withdrawn, and stays withdrawn");
    let r = call(app, "GET", "/v1/dead-letters", Some(&b.token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let dead = &r.body["dead_letters"][0];
    assert_eq!(dead["id"], id.to_string(), "{}", r.text);
    assert_eq!(dead["purpose"], "catalogue_callback");
    assert_eq!(
        (dead["sale_id"].clone(), dead["integration_id"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(dead["replayable"], true);

    // Once A listens again, a replay delivers it, signed.
    let receiver = Target::start().await;
    let r = call(
        app,
        "PUT",
        "/v1/integration/subscription",
        Some(&agent),
        Some(&json!({"url": receiver.url})),
    )
    .await;
    let secret = r.body["secret"].as_str().expect("secret").to_string();
    let path = format!("/v1/dead-letters/{id}/replay");
    let r = call(app, "POST", &path, Some(&b.token), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait_for_state(&db.pool, id, "delivered").await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    verify(&secret, &got[0]).expect("signed");
    assert_eq!(
        changes(&got[0].body),
        [triple("product", "fixed-3y", "deleted")]
    );

    // Unsubscribed: the next change files nothing at all.
    let r = call(
        app,
        "DELETE",
        "/v1/integration/subscription",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let seen = callbacks(&db.pool).await.len();
    b.grant(app, &org, &["green"], &["door"]).await;
    assert_eq!(callbacks(&db.pool).await.len(), seen);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn as_callback_makes_a_copy_follow_b_with_no_call_from_a() {
    let db = TestDb::new().await;
    let vhost = TestVhost::new().await;
    let keys = SecretBox::generate_spec("k1");
    // One deployment serving both tenants on 127.0.0.1; its public URL is
    // where B's callbacks reach A's console.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut st = uncached(pipeline_state(&db, &vhost, &keys));
    st.public_url = Some(url.clone());
    let p = pipeline(&db, &vhost, st.clone(), &keys);
    let app = &p.app;
    let served = app.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, served).await;
    });
    // A's console's reconciliation loop, as it runs in the process: with
    // the real interval (15 min) only a callback makes anything due.
    let stop = CancellationToken::new();
    let http = console::provider::client::http_client(&st.egress).expect("client");
    tokio::spawn(catalogue_sync::run(
        db.pool.clone(),
        st.secrets.clone(),
        http,
        st.public_url.clone(),
        Duration::from_secs(900),
        Duration::from_millis(100),
        stop.clone(),
    ));
    let _stop = stop.drop_guard();

    let b = Provider::new(app, "Energy B").await;
    let org = b.organization(app, "Shop A", &["fixed-3y"]).await;
    let (_, agent) = b.agent(app, &org, "a").await;
    let (_, a) = tenant(app, "Shop A", false).await;
    let body = json!({
        "name": "B",
        "target_kind": "salesync",
        "target_url": url,
        "credentials": {"bearer_token": agent},
        "removed_product_policy": "deactivate",
    });
    let r = call(app, "POST", "/v1/integrations", Some(&a), Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_string();
    // Importing subscribes A to B's callbacks.
    let sel = json!({"products": ["fixed-3y"]});
    let imports = format!("/v1/integrations/{id}/imports");
    let r = call(app, "PUT", &imports, Some(&a), Some(&sel)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        app,
        "GET",
        "/v1/integration/subscription",
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(
        r.body["url"],
        format!("{url}/v1/callbacks/catalogue/{id}"),
        "{}",
        r.text
    );

    // B changes the rate; A's copy follows, and nobody on A's side asked.
    put_product(app, &b.token, "fixed-3y", 1300, true).await;
    let copy = wait_for_copy(app, &a, &imports, |p| p["product"]["version"] == 2).await;
    assert_eq!(copy["product"]["price"]["amount"], 1300);
    let callback = callbacks(&db.pool).await[0].0;
    assert_eq!(state_of(&db.pool, callback).await.0, "delivered");

    // B deactivates it, then stops granting it: each reaches A the same way.
    put_product(app, &b.token, "fixed-3y", 1300, false).await;
    let copy = wait_for_copy(app, &a, &imports, |p| p["source_state"] == "inactive").await;
    assert_eq!(copy["active"], false, "the deactivate policy");
    b.grant(app, &org, &[], &["door"]).await;
    wait_for_copy(app, &a, &imports, |p| p["source_state"] == "removed").await;
    let r = call(app, "GET", &imports, Some(&a), None).await;
    assert!(r.body["last_synchronised_at"].is_string(), "{}", r.text);
}

/// Polls A's imports (15 s at most) until its one copy satisfies `done`.
async fn wait_for_copy(
    app: &Router,
    a: &str,
    imports: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let r = call(app, "GET", imports, Some(a), None).await;
        last = r.body["products"][0].clone();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("A's copy never followed B: {last}");
}
