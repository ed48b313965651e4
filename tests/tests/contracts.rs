//! The queue messages against their JSON Schemas (proto/schemas): envelopes
//! built from the shared Rust types validate and their required fields are
//! exactly the ones serde cannot do without; broken envelopes are refused;
//! and every `sale.event`, `sale.forward` and `sale.status` the running
//! services actually emit validates.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use salesync_core::amqp::bundle;
use salesync_core::amqp::publisher::OutgoingMessage;
use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::domain::validation::sample_sale;
use salesync_core::integration::ForwardingMode;
use salesync_core::messages::{
    Envelope, ForwardCommand, Purpose, SaleEvent, StatusUpdate, Trigger,
};
use salesync_e2e::sales::sale;
use salesync_e2e::schemas::{MESSAGE_SCHEMAS, MessageSchemas, read_schema, schemas_dir};
use salesync_e2e::{Behaviour, IntegrationInput, Stack, StackOptions, TestTarget, wait_until};
use serde_json::{Value, json};

fn event(trigger: Trigger) -> Value {
    let e = Envelope::new(
        TenantId::new(),
        SaleId::new(),
        SaleEvent {
            trigger,
            status: "completed".into(),
            accepted_at: Utc::now(),
            sale: sample_sale("s-1"),
        },
    );
    serde_json::to_value(e).expect("serialize")
}

/// A forward command; `body` only as older producers sent it.
fn forward(purpose: Purpose, integration: Option<IntegrationId>, body: Option<Value>) -> Value {
    let e = Envelope::new(
        TenantId::new(),
        SaleId::new(),
        ForwardCommand {
            delivery_id: DeliveryId::new(),
            purpose,
            integration_id: integration,
            target_url: "https://acc.example/hook".into(),
            target_ref: DeliveryId::new().to_string(),
            accepted_at: Utc::now(),
            body,
        },
    );
    serde_json::to_value(e).expect("serialize")
}

fn status(mapped: Option<&str>) -> Value {
    status_with(mapped, None)
}

fn status_with(mapped: Option<&str>, unmapped_reason: Option<&str>) -> Value {
    let e = Envelope::new(
        TenantId::new(),
        SaleId::new(),
        StatusUpdate {
            delivery_id: DeliveryId::new(),
            integration_id: IntegrationId::new(),
            target_status: "processed".into(),
            mapped_status: mapped.map(str::to_string),
            observed_at: Utc::now(),
            unmapped_reason: unmapped_reason.map(str::to_string),
        },
    );
    serde_json::to_value(e).expect("serialize")
}

/// One sample per variant of every message type.
fn samples() -> Vec<Value> {
    vec![
        event(Trigger::Created),
        event(Trigger::StatusChanged),
        event(Trigger::Manual {
            integration_id: IntegrationId::new(),
        }),
        forward(Purpose::Forward, Some(IntegrationId::new()), None),
        forward(Purpose::StatusWebhook, None, None),
        forward(Purpose::CatalogueCallback, None, None),
        forward(
            Purpose::Forward,
            Some(IntegrationId::new()),
            Some(json!({"type": "sale.forwarded", "data": {}})),
        ),
        status(Some("completed")),
        status(None),
        status_with(None, Some("B's status 'processed' is not mapped")),
    ]
}

fn schemas() -> MessageSchemas {
    MessageSchemas::load_default().expect("schemas compile")
}

#[test]
fn contracts_shared_types_validate() {
    let schemas = schemas();
    for v in samples() {
        if let Err(errs) = schemas.validate(&v) {
            panic!("{} does not validate: {errs:#?}\n{v:#}", v["type"]);
        }
    }
}

#[test]
fn contracts_broken_envelopes_are_refused() {
    let schemas = schemas();
    type Mutation = fn(&mut Value);
    let mutations: [(&str, Mutation); 8] = [
        ("missing id", |v| {
            v.as_object_mut().map(|o| o.remove("id"));
        }),
        ("unknown envelope field", |v| v["extra"] = json!(1)),
        ("wrong schema version", |v| v["schema_version"] = json!(2)),
        ("attempt 0", |v| v["attempt"] = json!(0)),
        ("tenant not a uuid", |v| v["tenant_id"] = json!("tenant-1")),
        ("bad timestamp", |v| v["occurred_at"] = json!("yesterday")),
        ("unknown payload field", |v| {
            v["payload"]["extra"] = json!(1)
        }),
        ("payload not an object", |v| v["payload"] = json!([])),
    ];
    for sample in samples() {
        for (what, mutate) in &mutations {
            let mut v = sample.clone();
            mutate(&mut v);
            assert!(
                schemas.validate(&v).is_err(),
                "{} with {what} passed validation",
                sample["type"]
            );
        }
    }
    // Payload-specific rules.
    let mut v = event(Trigger::Created);
    v["payload"]["trigger"] = json!({"kind": "manual"});
    assert!(
        schemas.validate(&v).is_err(),
        "manual trigger needs integration_id"
    );
    let mut v = event(Trigger::Created);
    v["payload"]["sale"]["lines"][0]["vat_amout"] = json!(1);
    assert!(
        schemas.validate(&v).is_err(),
        "the sale is checked against sale-input"
    );
    let mut v = forward(Purpose::Forward, None, None);
    v["payload"]["purpose"] = json!("other");
    assert!(schemas.validate(&v).is_err());
    let mut v = forward(Purpose::Forward, None, None);
    v["payload"]["body"] = json!("not an object");
    assert!(schemas.validate(&v).is_err(), "a carried body is an object");
    let mut v = status(None);
    v["type"] = json!("sale.event");
    assert!(
        schemas.validate(&v).is_err(),
        "a status update is not a sale event"
    );
}

/// Follows local `$ref`s to the node that declares `properties`.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/$defs/") => resolve(root, &root["$defs"][&r[8..]]),
        _ => node,
    }
}

/// Keys of `value` vs `properties` of the schema node, and `required` vs
/// what serde cannot do without (removing the key breaks deserialization).
fn compare_object<T: serde::de::DeserializeOwned>(
    file: &str,
    node: &Value,
    whole: &Value,
    at: &[&str],
) {
    let mut target = whole;
    for k in at {
        target = &target[*k];
    }
    let keys: BTreeSet<&String> = target.as_object().expect("object").keys().collect();
    let props: BTreeSet<&String> = node["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{file} {at:?}: no properties"))
        .keys()
        .collect();
    assert_eq!(keys, props, "{file} {at:?}: field names differ");
    assert_eq!(node["additionalProperties"], json!(false), "{file} {at:?}");
    let required: BTreeSet<&str> = node["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for key in props {
        let mut doc = whole.clone();
        let mut cur = &mut doc;
        for k in at {
            cur = &mut cur[*k];
        }
        cur.as_object_mut().map(|o| o.remove(key.as_str()));
        let accepted = serde_json::from_value::<T>(doc).is_ok();
        assert_eq!(
            !accepted,
            required.contains(key.as_str()),
            "{file} {at:?}.{key}: serde {} it missing, schema required={}",
            if accepted { "accepts" } else { "rejects" },
            required.contains(key.as_str())
        );
    }
}

#[test]
fn contracts_schema_fields_match_serde() {
    let dir = schemas_dir();
    let files: BTreeMap<&str, &str> = MESSAGE_SCHEMAS.into_iter().collect();
    let cases: [(&str, Value); 3] = [
        ("sale.event", event(Trigger::Created)),
        (
            "sale.forward",
            // With the optional body, so every property is present.
            forward(
                Purpose::Forward,
                Some(IntegrationId::new()),
                Some(json!({"type": "sale.forwarded"})),
            ),
        ),
        // Unmapped with its reason, so every property is present.
        ("sale.status", status_with(None, Some("not mapped"))),
    ];
    for (kind, sample) in cases {
        let file = files[kind];
        let root = read_schema(&dir, file).expect("schema");
        assert_eq!(
            root["$id"],
            format!("https://salesync.dev/schemas/{file}"),
            "{file}"
        );
        assert_eq!(root["properties"]["type"]["const"], kind);
        let payload = resolve(&root, &root["properties"]["payload"]);
        match kind {
            "sale.event" => {
                compare_object::<Envelope<SaleEvent>>(file, &root, &sample, &[]);
                compare_object::<Envelope<SaleEvent>>(file, payload, &sample, &["payload"]);
            }
            "sale.forward" => {
                compare_object::<Envelope<ForwardCommand>>(file, &root, &sample, &[]);
                compare_object::<Envelope<ForwardCommand>>(file, payload, &sample, &["payload"]);
            }
            _ => {
                compare_object::<Envelope<StatusUpdate>>(file, &root, &sample, &[]);
                compare_object::<Envelope<StatusUpdate>>(file, payload, &sample, &["payload"]);
            }
        }
    }
}

/// A bundle as the relay builds it matches its schema, and so does each
/// part's body; bundles the consumer would refuse are refused here too.
#[test]
fn contracts_bundles_match_their_schema() {
    let schemas = schemas();
    let parts: Vec<OutgoingMessage> = [event(Trigger::Created), event(Trigger::StatusChanged)]
        .iter()
        .map(|e| {
            OutgoingMessage::new(
                "sale.ingested",
                uuid::Uuid::new_v4().to_string(),
                "sale.event",
                BTreeMap::from([("traceparent".to_string(), "00-x-y-01".to_string())]),
                serde_json::to_vec(e).expect("json"),
            )
        })
        .collect();
    let bundled = bundle::bundle(parts, |_| true);
    assert_eq!(bundled.len(), 1);
    let v: Value = serde_json::from_slice(&bundled[0].body).expect("json");
    if let Err(errs) = schemas.validate_as(bundle::BUNDLE_TYPE, &v) {
        panic!("bundle violates its schema: {errs:#?}\n{v:#}");
    }
    for part in v["parts"].as_array().expect("parts") {
        assert_eq!(part["type"], "sale.event");
        if let Err(errs) = schemas.validate(&part["body"]) {
            panic!("part violates its schema: {errs:#?}");
        }
    }
    for broken in [
        json!({"parts": []}),
        json!({"parts": [{"message_id": "a", "type": "sale.event", "headers": {}}]}),
        json!({"parts": [], "extra": 1}),
    ] {
        assert!(
            schemas.validate_as(bundle::BUNDLE_TYPE, &broken).is_err(),
            "{broken}"
        );
        let bytes = serde_json::to_vec(&broken).expect("json");
        assert!(bundle::unbundle(&bytes).is_err(), "{broken}");
    }
}

/// Runs the services through every message type and validates what they emit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_emitted_messages_match_schemas() {
    let schemas = schemas();
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let broker = stack.broker().await.expect("broker");
    let capture = broker.capture("#").await.expect("capture");

    let a = stack.tenant("pos-a").await.expect("tenant A");
    let b = stack.tenant("tenant-b").await.expect("tenant B");
    let b_token = stack.integration_token(&b).await.expect("B token");
    let to_b = a
        .api
        .create_integration(&IntegrationInput {
            poll_status: true,
            status_map: BTreeMap::from([("processed".to_string(), "completed".to_string())]),
            ..IntegrationInput::salesync("to-b", &stack.ingest_url(), &b_token)
        })
        .await
        .expect("integration to B");
    let acc = TestTarget::start(Behaviour::Ok).await.expect("target");
    let input = IntegrationInput {
        mode: ForwardingMode::Manual,
        ..IntegrationInput::webhook("manual-acc", &acc.url("/hook"))
    };
    let manual = a.integrate(&acc, &input).await.expect("manual integration");
    let hook = TestTarget::start(Behaviour::Ok).await.expect("hook");
    let set = a
        .api
        .set_webhook(&hook.url("/a-webhook"))
        .await
        .expect("webhook");
    hook.set_secret(&set.secret);

    let posted = a
        .api
        .post_sale(&sale("c-1", "paid", "COF-001"))
        .await
        .expect("post");
    a.api
        .forward(posted.id, manual.id)
        .await
        .expect("manual forward");
    // A batch is one commit, so its events travel as one bundle.
    a.api
        .post_batch(&[
            sale("c-2", "open", "COF-001"),
            sale("c-3", "open", "COF-001"),
        ])
        .await
        .expect("batch");

    // B marks its copy processed → sale.status → A's status webhook.
    let b_sale = salesync_e2e::wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let v = a.api.get_sale(posted.id).await.ok()?;
            let d = v
                .deliveries
                .iter()
                .find(|d| d.integration_id == Some(to_b.id) && d.state == "delivered")?;
            b.api
                .lookup(&[d.id.to_string()])
                .await
                .ok()?
                .into_iter()
                .next()
        },
    )
    .await
    .expect("sale reached B");
    b.api
        .set_status(b_sale.id, "processed", None)
        .await
        .expect("B status");

    let kinds = || -> BTreeSet<String> {
        capture
            .messages()
            .iter()
            .filter_map(|m| m.envelope_type())
            .collect()
    };
    let all_seen = wait_until(
        Duration::from_secs(45),
        Duration::from_millis(200),
        || async {
            let k = kinds();
            ["sale.event", "sale.forward", "sale.status"]
                .iter()
                .all(|t| k.contains(*t))
                && hook.total_requests() >= 1
        },
    )
    .await;
    assert!(
        all_seen.is_ok(),
        "did not see every message type: {:?}",
        kinds()
    );
    stack
        .wait_quiet(Duration::from_secs(30))
        .await
        .expect("quiet");

    let mut checked = BTreeMap::<String, usize>::new();
    // Bundles are opened by the capture; each part is held to its schema.
    let bundled = capture
        .messages()
        .iter()
        .filter(|m| m.bundle_id.is_some())
        .count();
    assert!(bundled >= 2, "the batch's events travelled bundled");
    for m in capture.messages() {
        if m.routing_key == "sale.dead" {
            continue;
        }
        let v = m.json();
        if let Err(errs) = schemas.validate(&v) {
            panic!(
                "{} message violates its schema: {errs:#?}\n{v:#}",
                m.routing_key
            );
        }
        assert_eq!(
            m.message_type.as_deref(),
            v["type"].as_str(),
            "AMQP type property = envelope type"
        );
        *checked.entry(m.routing_key.clone()).or_default() += 1;
    }
    eprintln!("validated: {checked:?}");
    for key in [
        "sale.ingested",
        "sale.status_changed",
        "sale.forward_requested",
        "sale.forward",
        "sale.status",
    ] {
        assert!(
            checked.contains_key(key),
            "no {key} message seen: {checked:?}"
        );
    }
    drop(capture);
    broker.close().await;
}
