//! The message decoders under fire (issue 3, bad-input campaign): random
//! bytes, random JSON, and structurally mutated envelopes of every payload
//! type go through `Envelope::<T>::decode`. A consumer dead-letters whatever
//! decode refuses, so decode must answer `Err` for anything that is not a
//! complete envelope of its own type and version — and never panic or blow
//! the stack, whatever arrives on the queue.

use chrono::Utc;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId, sample_sale};
use salesync_core::messages::{
    DecodeError, Envelope, ForwardCommand, Payload, Purpose, SaleEvent, StatusUpdate, Trigger,
    peek_envelope,
};
use serde_json::{Value, json};

const CASES: u32 = 2000;

/// Fixed seeds keep CI repeatable; `FUZZ_SEED` explores other sequences.
fn runner(seed: u64) -> TestRunner {
    let extra: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed ^ extra),
        ..Config::default()
    })
}

fn sale_event() -> Vec<u8> {
    Envelope::new(
        TenantId::new(),
        SaleId::new(),
        SaleEvent {
            trigger: Trigger::Manual {
                integration_id: IntegrationId::new(),
            },
            status: "completed".into(),
            accepted_at: Utc::now(),
            sale: sample_sale("s-1"),
        },
    )
    .to_bytes()
}

fn forward_command() -> Vec<u8> {
    Envelope::new(
        TenantId::new(),
        SaleId::new(),
        ForwardCommand {
            delivery_id: DeliveryId::new(),
            purpose: Purpose::Forward,
            integration_id: Some(IntegrationId::new()),
            target_url: "https://books.example/in".into(),
            target_ref: "ref-1".into(),
            accepted_at: Utc::now(),
            // A command from an older producer, which carried the body.
            body: Some(json!({"type": "sale.forwarded", "data": {"n": [1, 2, {"x": null}]}})),
        },
    )
    .to_bytes()
}

fn status_update() -> Vec<u8> {
    Envelope::new(
        TenantId::new(),
        SaleId::new(),
        StatusUpdate {
            delivery_id: DeliveryId::new(),
            integration_id: IntegrationId::new(),
            target_status: "processed".into(),
            mapped_status: Some("completed".into()),
            observed_at: Utc::now(),
            unmapped_reason: None,
        },
    )
    .to_bytes()
}

/// JSON equality, with floats equal to within a few units in the last place:
/// serde_json (without its `float_roundtrip` feature) may parse a float one
/// ULP off, so a float in a free-form body can drift by that much per hop.
/// Sales carry no floats (amounts are integers, decimals strings).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || ((x - y).abs() <= (x.abs() + y.abs()) * 1e-14),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Decodes `bytes` as `T`. An envelope that decodes must be of `T`'s type
/// and version and survive a round trip unchanged.
fn decode_checked<T: Payload + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<Option<Envelope<T>>, TestCaseError> {
    match Envelope::<T>::decode(bytes) {
        Err(_) => Ok(None),
        Ok(e) => {
            prop_assert_eq!(e.kind.as_str(), T::TYPE);
            prop_assert_eq!(e.schema_version, T::SCHEMA_VERSION);
            let again = Envelope::<T>::decode(&e.to_bytes());
            let (before, after) = (
                serde_json::to_value(&e).unwrap_or_default(),
                again
                    .as_ref()
                    .map(|a| serde_json::to_value(a).unwrap_or_default())
                    .unwrap_or_default(),
            );
            prop_assert!(same(&before, &after), "round trip changed: {:?}", again);
            Ok(Some(e))
        }
    }
}

/// Feeds `bytes` to every decoder (and `peek_envelope`); returns which accepted.
fn decode_all(bytes: &[u8]) -> Result<[bool; 3], TestCaseError> {
    let _ = peek_envelope(bytes);
    Ok([
        decode_checked::<SaleEvent>(bytes)?.is_some(),
        decode_checked::<ForwardCommand>(bytes)?.is_some(),
        decode_checked::<StatusUpdate>(bytes)?.is_some(),
    ])
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(&["sale.event", "sale.forward", "sale.status", "", "1"][..])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(c, format!("{here}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    AddKey(usize, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let hostile = prop_oneof![
        any_json(),
        prop::sample::select(vec![
            json!(null),
            json!(""),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!("sale.status"),
            json!("not-a-uuid"),
            json!("2025-13-45T99:99:99Z"),
            json!(2),
            json!(0),
            json!(4294967296u64),
            json!({"kind": "nope"}),
            json!([]),
        ]),
    ];
    prop_oneof![
        3 => (any::<usize>(), hostile.clone()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => (any::<usize>(), any::<String>(), hostile).prop_map(|(i, k, v)| Mutation::AddKey(i, k, v)),
    ]
}

fn apply(v: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let pick = |i: &usize| all[i % all.len()].clone();
    match m {
        Mutation::Replace(i, with) => {
            if let Some(node) = v.pointer_mut(&pick(i)) {
                *node = with.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = pick(i);
            if let Some((parent, last)) = p.rsplit_once('/') {
                match v.pointer_mut(parent) {
                    Some(Value::Object(o)) => {
                        o.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(n) = last.parse::<usize>()
                            && n < a.len()
                        {
                            a.remove(n);
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::AddKey(i, key, with) => {
            if let Some(Value::Object(o)) = v.pointer_mut(&pick(i)) {
                o.entry(key.clone()).or_insert_with(|| with.clone());
            }
        }
    }
}

#[test]
fn random_bytes_never_decode() {
    let strategy = prop::collection::vec(any::<u8>(), 0..2048);
    runner(11)
        .run(&strategy, |bytes| {
            prop_assert_eq!(decode_all(&bytes)?, [false; 3]);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn random_json_never_decodes() {
    runner(12)
        .run(&any_json(), |v| {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            prop_assert_eq!(decode_all(&bytes)?, [false; 3]);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn mutated_envelopes_decode_only_as_their_own_type() {
    let originals = [sale_event(), forward_command(), status_update()];
    let strategy = (0..3usize, prop::collection::vec(mutation(), 1..4));
    runner(13)
        .run(&strategy, |(which, mutations)| {
            let mut v: Value = serde_json::from_slice(&originals[which]).unwrap_or_default();
            for m in &mutations {
                apply(&mut v, m);
            }
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            let accepted = decode_all(&bytes)?;
            // Whatever survived the mutations, no envelope is two types at once.
            prop_assert!(
                accepted.iter().filter(|a| **a).count() <= 1,
                "{:?}",
                accepted
            );
            for (i, ok) in accepted.iter().enumerate() {
                if *ok && i != which {
                    // Only possible if the mutations rewrote `type` into a
                    // complete envelope of another type; never by accident.
                    prop_assert!(
                        v["type"] != json!(["sale.event", "sale.forward", "sale.status"][which])
                    );
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn damaged_envelope_bytes_never_panic() {
    let originals = [sale_event(), forward_command(), status_update()];
    let strategy = (
        0..3usize,
        prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..6),
    );
    runner(14)
        .run(&strategy, |(which, damages)| {
            let mut bytes = originals[which].clone();
            for (at, byte, kind) in &damages {
                let at = at % bytes.len().max(1);
                match kind {
                    0 => bytes.truncate(at),
                    1 => bytes.insert(at.min(bytes.len()), *byte),
                    _ => {
                        if let Some(b) = bytes.get_mut(at) {
                            *b ^= byte | 1;
                        }
                    }
                }
            }
            decode_all(&bytes)?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn hostile_envelopes_are_refused() {
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let mut status: Value = serde_json::from_slice(&status_update()).unwrap_or_default();
    let with = |v: &Value, pointer: &str, raw: &str| {
        let marker = "\"__hostile__\"";
        let mut v = v.clone();
        if let Some(node) = v.pointer_mut(pointer) {
            *node = json!("__hostile__");
        }
        serde_json::to_string(&v)
            .unwrap_or_default()
            .replace(marker, raw)
            .into_bytes()
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("deep array", deep_array.clone().into_bytes()),
        ("deep object", deep_object.clone().into_bytes()),
        ("invalid UTF-8", b"{\"type\":\"sale.status\xff\"}".to_vec()),
        ("BOM", [&b"\xef\xbb\xbf"[..], &status_update()].concat()),
        ("trailing garbage", [&status_update()[..], b"x"].concat()),
        ("two envelopes", [status_update(), status_update()].concat()),
        (
            "deep payload body",
            with(
                &serde_json::from_slice(&forward_command()).unwrap_or_default(),
                "/payload/body",
                &deep_array,
            ),
        ),
        ("version 1e400", with(&status, "/schema_version", "1e400")),
        ("version -1", with(&status, "/schema_version", "-1")),
        (
            "version 2^32",
            with(&status, "/schema_version", "4294967296"),
        ),
        ("version 1.0", with(&status, "/schema_version", "1.0")),
        ("attempt -1", with(&status, "/attempt", "-1")),
        (
            "lone surrogate",
            with(&status, "/payload/target_status", "\"\\ud800\""),
        ),
        ("id not a uuid", with(&status, "/id", "\"x\"")),
        ("tenant nil-ish", with(&status, "/tenant_id", "\"\"")),
        (
            "timestamp",
            with(&status, "/occurred_at", "\"2025-02-30T00:00:00Z\""),
        ),
        ("type as number", with(&status, "/type", "1")),
        (
            "duplicate type",
            with(&status, "/type", "\"sale.status\",\"type\":\"sale.event\""),
        ),
    ];
    if let Some(o) = status.as_object_mut() {
        o.remove("payload");
    }
    cases.push((
        "no payload",
        serde_json::to_vec(&status).unwrap_or_default(),
    ));
    for (name, bytes) in cases {
        let got = [
            Envelope::<SaleEvent>::decode(&bytes).is_ok(),
            Envelope::<ForwardCommand>::decode(&bytes).is_ok(),
            Envelope::<StatusUpdate>::decode(&bytes).is_ok(),
        ];
        assert_eq!(got, [false; 3], "{name} decoded");
        let _ = peek_envelope(&bytes);
    }
    // Refusals say why.
    assert!(matches!(
        Envelope::<StatusUpdate>::decode(deep_array.as_bytes()),
        Err(DecodeError::Malformed(_))
    ));
}
