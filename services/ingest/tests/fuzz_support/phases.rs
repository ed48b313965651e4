//! The campaign's phases. The systematic ones walk every field of a valid
//! sale (a wrong type in each, each one missing, an unknown key in every
//! object, every hostile string in every text field); the proptest ones break
//! sales, raw bytes, batches and every other route's bodies at random. Each
//! sale body is judged by `oracle` first, so the answer must not only avoid
//! a 5xx but also be the right one.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use salesync_core::domain::{SaleInput, sample_sale};
use serde_json::{Value, json};

use super::client::{Client, Req};
use super::mutate::{
    Doc, HOSTILE_STRINGS, Mutation, Piece, Seg, mutation, nesting, paths, render, sale_targets,
};
use super::oracle::{self, Verdict};

/// The ids and tokens the phases use.
pub struct Target {
    pub token: String,
    pub admin: String,
    pub tenant_id: String,
    pub sale_id: String,
    pub integration_id: String,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// An external id no earlier case used.
pub fn fresh_id(prefix: &str) -> String {
    format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// A valid sale as JSON: the shared sample, placed through a flow and with
/// answers of every kind on its first line, so every phase reaches them too.
pub fn sale_value(external_id: &str) -> Value {
    let mut sale = sample_sale(external_id);
    sale.flow = Some("energy-fixed".into());
    sale.lines[0].answers = [
        ("iban", json!("NL91ABNA0417164300")),
        ("persons", json!(2)),
        ("usage_kwh", json!(2750.5)),
        ("green", json!(true)),
        ("extras", json!(["meter_check", 3, false])),
        ("comment", Value::Null),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    serde_json::to_value(sale).unwrap_or_default()
}

pub fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    })
}

/// Sends a sale body and holds the answer to the oracle's verdict; returns
/// the id of a sale that was created.
fn post_sale(
    c: &Client,
    t: &Target,
    label: &'static str,
    bytes: Vec<u8>,
    duplicated: bool,
) -> Option<(String, SaleInput)> {
    let verdict = oracle::sale(&bytes, duplicated);
    let a = c.send(
        Req::post(label, "/v1/sales")
            .bearer(&t.token)
            .json(bytes)
            .expect(verdict.statuses()),
    );
    match (a.status, verdict) {
        (201, Verdict::Accept(sale)) => a.body["id"].as_str().map(|id| (id.to_string(), *sale)),
        _ => None,
    }
}

/// A valid sale with a fresh external id, as a document to break.
fn fresh_doc(prefix: &str) -> Doc {
    Doc::new(sale_value(&fresh_id(prefix)))
}

/// Every field of the sample: `(path, value)` without the root.
fn sample_fields() -> Vec<(Vec<Seg>, Value)> {
    let v = sale_value("fields");
    paths(&v)
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let node = p.iter().fold(&v, |cur, seg| match seg {
                Seg::Key(k) => &cur[k.as_str()],
                Seg::Idx(i) => &cur[*i],
            });
            (p.clone(), node.clone())
        })
        .collect()
}

fn set(doc: &mut Doc, path: &[Seg], with: Piece) -> bool {
    doc.apply(&Mutation::Set {
        path: render(path),
        with,
    })
}

/// A wrong JSON type in every field, every field missing, an unknown key in
/// every object.
pub fn every_field(c: &Client, t: &Target) {
    let wrong: Vec<Value> = vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("text"),
        json!([]),
        json!([1]),
        json!({}),
        json!({"a": 1}),
    ];
    for (path, _) in sample_fields() {
        for w in &wrong {
            let mut doc = fresh_doc("wt");
            set(&mut doc, &path, Piece::Json(w.clone()));
            let (bytes, dup) = doc.to_bytes();
            post_sale(c, t, "wrong type in every field", bytes, dup);
        }
        for raw in ["1e400", "-0", "9223372036854775808", "\"\\ud800\""] {
            let mut doc = fresh_doc("wr");
            set(&mut doc, &path, Piece::Raw(raw.into()));
            let (bytes, dup) = doc.to_bytes();
            post_sale(c, t, "wrong type in every field", bytes, dup);
        }
        let mut doc = fresh_doc("mf");
        doc.remove(&path);
        let (bytes, dup) = doc.to_bytes();
        post_sale(c, t, "missing field", bytes, dup);
    }
    let objects = sample_fields()
        .into_iter()
        .filter(|(_, v)| v.is_object())
        .map(|(p, _)| p)
        .chain([vec![]]);
    for path in objects {
        for key in ["x_unknown", "__proto__", "", "\0"] {
            let mut doc = fresh_doc("uk");
            doc.add_key(&path, key, &Piece::Json(json!(1)));
            let (bytes, dup) = doc.to_bytes();
            post_sale(c, t, "unknown field", bytes, dup);
        }
    }
}

/// Every hostile string in every text field (and as a metadata key); each
/// sale accepted is read back and must come back exactly as sent.
pub fn every_string(c: &Client, t: &Target) {
    let texts: Vec<Vec<Seg>> = sample_fields()
        .into_iter()
        .filter(|(_, v)| v.is_string())
        .map(|(p, _)| p)
        .collect();
    let mut accepted = Vec::new();
    for s in HOSTILE_STRINGS {
        for path in &texts {
            let mut doc = fresh_doc("hs");
            set(&mut doc, path, Piece::Json(json!(s)));
            let (bytes, dup) = doc.to_bytes();
            accepted.extend(post_sale(c, t, "hostile string in every field", bytes, dup));
        }
        let mut doc = fresh_doc("hk");
        doc.value["metadata"][*s] = json!(s);
        let (bytes, dup) = doc.to_bytes();
        accepted.extend(post_sale(c, t, "hostile string in every field", bytes, dup));
    }
    for (id, sent) in accepted {
        let a = c.send(
            Req::new("read back", Method::GET, format!("/v1/sales/{id}"))
                .bearer(&t.token)
                .expect(&[200]),
        );
        let back: Option<SaleInput> = serde_json::from_value(a.body["sale"].clone()).ok();
        if back.as_ref() != Some(&sent) {
            c.finding(
                "read back",
                "stored sale differs from the one sent",
                &format!("{id}: sent {sent:?}"),
            );
        }
    }
}

/// Random structural mutations of a valid sale.
pub fn mutated_sales(c: &Client, t: &Target, cases: u32, seed: u64) {
    let strategy = proptest::collection::vec(mutation(sale_targets()), 1..5);
    let _ = runner(cases, seed).run(&strategy, |mutations| {
        let mut doc = fresh_doc("pm");
        for m in &mutations {
            doc.apply(m);
        }
        let (bytes, dup) = doc.to_bytes();
        post_sale(c, t, "mutated sale (proptest)", bytes, dup);
        Ok(())
    });
}

/// One way to damage the bytes of a valid body.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Splice(usize, &'static str),
    Flip(usize, u8),
}

fn damage() -> BoxedStrategy<Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
        (
            any::<usize>(),
            proptest::sample::select(
                &[
                    "{",
                    "}",
                    "[",
                    "]",
                    ",",
                    ":",
                    "\"",
                    "\\",
                    "\\u0000",
                    "\\ud800",
                    "null",
                    "1e400",
                    "-",
                    "\u{0}",
                    "\"a\":1,",
                    "\"external_id\":\"x\","
                ][..]
            )
        )
            .prop_map(|(at, s)| Damage::Splice(at, s)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Flip(at, b)),
    ]
    .boxed()
}

fn apply_damage(bytes: &mut Vec<u8>, d: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match d {
        Damage::Truncate(at) => bytes.truncate(at % bytes.len()),
        Damage::Insert(at, b) => {
            let at = at % bytes.len();
            bytes.splice(at..at, b.iter().copied());
        }
        Damage::Splice(at, s) => {
            let at = at % bytes.len();
            bytes.splice(at..at, s.bytes());
        }
        Damage::Flip(at, b) => {
            let at = at % bytes.len();
            bytes[at] ^= b | 1;
        }
    }
}

/// Random damage to the bytes of a valid sale (invalid UTF-8, truncation,
/// stray tokens): whatever the local parser refuses, ingest must refuse too.
pub fn damaged_bytes(c: &Client, t: &Target, cases: u32, seed: u64) {
    let strategy = proptest::collection::vec(damage(), 1..4);
    let _ = runner(cases, seed).run(&strategy, |damages| {
        let mut bytes = serde_json::to_vec(&sale_value(&fresh_id("db"))).unwrap_or_default();
        for d in &damages {
            apply_damage(&mut bytes, d);
        }
        // Repeated keys can only come from a splice; the oracle cannot see
        // them in raw bytes, so such a body may be refused either way.
        let verdict = oracle::sale(&bytes, false);
        let mut req = Req::post("damaged bytes (proptest)", "/v1/sales")
            .bearer(&t.token)
            .json(bytes);
        if let Verdict::Refuse(_) = verdict {
            req = req.expect(&[400, 422]);
        }
        c.send(req);
        Ok(())
    });
}

/// Random batches of valid and broken sales; each item's outcome must agree
/// with the oracle, or the whole request must be refused when an item holds
/// something no part of the database can store.
pub fn batches(c: &Client, t: &Target, cases: u32, seed: u64) {
    let item = proptest::collection::vec(mutation(sale_targets()), 0..3);
    let strategy = proptest::collection::vec(item, 1..7);
    let _ = runner(cases, seed).run(&strategy, |items| {
        let mut texts = Vec::new();
        let mut verdicts = Vec::new();
        let mut whole_refused = false;
        for mutations in &items {
            let mut doc = fresh_doc("pb");
            for m in mutations {
                doc.apply(m);
            }
            let (bytes, dup) = doc.to_bytes();
            let nul =
                serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| super::mutate::has_nul(&v));
            whole_refused |= dup || nul;
            verdicts.push(oracle::sale(&bytes, dup));
            texts.push(String::from_utf8_lossy(&bytes).to_string());
        }
        let body = format!("{{\"sales\":[{}]}}", texts.join(","));
        // Broken JSON in any item breaks the whole body.
        let body_ok = serde_json::from_str::<Value>(&body).is_ok();
        let expect: &[u16] = if !body_ok || whole_refused {
            &[400, 422]
        } else {
            &[200]
        };
        let a = c.send(
            Req::post("mutated batch (proptest)", "/v1/sales/batch")
                .bearer(&t.token)
                .json(body.into_bytes())
                .expect(expect),
        );
        if a.status == 200 {
            for (i, v) in verdicts.iter().enumerate() {
                let outcome = a.body["results"][i]["outcome"].as_str().unwrap_or("");
                if !v.allows_outcome(outcome) {
                    c.finding(
                        "mutated batch (proptest)",
                        &format!("item {i}: outcome '{outcome}' but the oracle says {v:?}"),
                        &texts[i],
                    );
                }
            }
        }
        Ok(())
    });
}

/// Valid bodies of every other route, each the start of random mutations.
fn route_bases(t: &Target) -> Vec<(&'static str, Method, String, String, Value)> {
    let integration = json!({
        "name": "Books",
        "target_kind": "webhook",
        "target_url": "https://books.example/in",
        "credentials": {"bearer_token": "tok"},
        "enabled": true,
        "mode": "manual",
        "trigger_statuses": ["paid"],
        "conditions": {"skus_any": ["A"], "categories_any": ["c"], "skus_none": ["Z"],
                       "locations": ["l"], "min_gross": 1, "currencies": ["EUR"],
                       "rules": {"all": [{"flow": {"in": ["door"]}},
                                         {"any": [{"answer": {"question": "term", "test": {"equals": "3y"}}},
                                                  {"not": {"amount": {"range": {"min": 1, "max": 9}}}}]}]}},
        "mapping": {"skus": {"A": "B"}, "statuses_out": {"paid": "done"},
                    "locations": {"l": "m"}, "target_flow": "f"},
        "send_opt_in": false,
        "poll_status": true,
        "status_url": "https://books.example/status",
        "status_map": {"done": "paid"},
        "final_statuses": ["done"]
    });
    vec![
        (
            "status change (proptest)",
            Method::POST,
            format!("/v1/sales/{}/status", t.sale_id),
            t.token.clone(),
            json!({"status": "paid", "note": "n"}),
        ),
        (
            "manual forward (proptest)",
            Method::POST,
            format!("/v1/sales/{}/forward", t.sale_id),
            t.token.clone(),
            json!({"integration_id": t.integration_id}),
        ),
        (
            "lookup (proptest)",
            Method::POST,
            "/v1/sales/lookup".into(),
            t.token.clone(),
            json!({"external_ids": ["seed-a", "x"]}),
        ),
        (
            "integration create (proptest)",
            Method::POST,
            "/v1/integrations".into(),
            t.token.clone(),
            integration.clone(),
        ),
        (
            "integration patch (proptest)",
            Method::PATCH,
            format!("/v1/integrations/{}", t.integration_id),
            t.token.clone(),
            integration,
        ),
        (
            "webhook (proptest)",
            Method::PUT,
            "/v1/webhook".into(),
            t.token.clone(),
            json!({"url": "https://hooks.example/in"}),
        ),
        (
            "test connection (proptest)",
            Method::POST,
            "/v1/integrations/test-connection".into(),
            t.token.clone(),
            // Loopback: refused by the egress policy at once, never a wait.
            json!({"url": "http://127.0.0.1:9/", "token": "sst_fuzz"}),
        ),
        (
            "imports (proptest)",
            Method::PUT,
            format!("/v1/integrations/{}/imports", t.integration_id),
            t.token.clone(),
            json!({"products": ["fixed-3y", "green"]}),
        ),
        (
            "mappings (proptest)",
            Method::PUT,
            format!("/v1/integrations/{}/mappings", t.integration_id),
            t.token.clone(),
            json!({"flows": {"energy": "door"},
                   "questions": {"iban": {"from_question": {"question": "bank", "options": {"a": "b"}}},
                                 "channel": {"constant": "door"}}}),
        ),
        (
            "new agent (proptest)",
            Method::POST,
            format!("/v1/organizations/{}/agents", uuid::Uuid::new_v4()),
            t.token.clone(),
            json!({"name": "shop-a"}),
        ),
        (
            "catalogue callback (proptest)",
            Method::POST,
            format!("/v1/callbacks/catalogue/{}", t.integration_id),
            String::new(),
            json!({"type": "catalogue.changed", "event_id": "e", "changes": []}),
        ),
        (
            "admin tenant (proptest)",
            Method::POST,
            "/admin/tenants".into(),
            t.admin.clone(),
            json!({"name": "Fuzz tenant", "token_name": "pos", "integration_only": false}),
        ),
        (
            "admin token (proptest)",
            Method::POST,
            format!("/admin/tenants/{}/tokens", t.tenant_id),
            t.admin.clone(),
            json!({"name": "pos", "integration_only": true}),
        ),
    ]
}

/// Random mutations of every other route's body.
pub fn other_routes(c: &Client, t: &Target, cases: u32, seed: u64) {
    let bases = route_bases(t);
    let strategy = (
        0..bases.len(),
        proptest::collection::vec(mutation(vec![]), 1..4),
        any::<u32>(),
    );
    let _ = runner(cases, seed).run(&strategy, |(route, mutations, salt)| {
        let (label, method, path, token, base) = &bases[route];
        let mut doc = Doc::new(base.clone());
        if *label == "admin tenant (proptest)" {
            // Mostly fresh names, so not every case is a 409.
            doc.value["name"] = json!(format!("Fuzz tenant {salt}"));
        }
        for m in &mutations {
            doc.apply(m);
        }
        let (bytes, _) = doc.to_bytes();
        c.send(
            Req::new(label, method.clone(), path.clone())
                .bearer(token)
                .json(bytes),
        );
        Ok(())
    });
}

/// Deep nesting and wrong types as whole bodies of the sale routes, outside
/// proptest's reach (sizes proptest would shrink away).
pub fn deep_values(c: &Client, t: &Target) {
    for depth in [100usize, 127, 128, 129, 1000, 10_000, 100_000] {
        for objects in [false, true] {
            let deep = nesting(depth, objects);
            let mut doc = fresh_doc("dn");
            doc.apply(&Mutation::Set {
                path: "metadata".into(),
                with: Piece::Raw(deep.clone()),
            });
            let (bytes, dup) = doc.to_bytes();
            post_sale(c, t, "deep nesting", bytes, dup);
            let body = format!("{{\"sales\":[{deep}]}}");
            // Within serde_json's recursion limit (128, counting the two
            // outer levels) an item is merely not a sale.
            let want: &[u16] = if depth + 2 <= 128 { &[200] } else { &[400] };
            c.send(
                Req::post("deep nesting", "/v1/sales/batch")
                    .bearer(&t.token)
                    .json(body.into_bytes())
                    .expect(want),
            );
        }
    }
    // Every wrong type as the whole body.
    let wrong = [
        Value::Null,
        json!(true),
        json!(0),
        json!(1.5),
        json!("sale"),
        json!([]),
        json!([1, 2]),
        json!({}),
    ];
    for v in wrong {
        for path in ["/v1/sales", "/v1/sales/batch"] {
            c.send(
                Req::post("wrong type as body", path)
                    .bearer(&t.token)
                    .json(serde_json::to_vec(&v).unwrap_or_default())
                    .expect(&[400, 422]),
            );
        }
    }
}
