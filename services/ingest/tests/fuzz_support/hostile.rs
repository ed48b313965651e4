//! The hand-written part of the campaign: requests no structural mutation
//! produces — bodies past the size limit (with and without a length),
//! 10,000-deep nesting, invalid UTF-8, truncated and duplicated JSON, wrong
//! content types and methods, absurd batch sizes, ids in URLs that are not
//! UUIDs, enormous headers and tokens, other tenants' ids — each with the
//! status the contract promises for it.

use axum::http::Method;
use serde_json::{Value, json};

use super::client::Req;
use super::mutate::nesting;

/// What the cases need to know about the database they run against.
pub struct Ctx {
    pub admin: String,
    pub token: String,
    pub integration_token: String,
    /// A sale and an integration of `token`'s tenant.
    pub sale_id: String,
    pub integration_id: String,
    /// A sale and an integration of another tenant.
    pub foreign_sale_id: String,
    pub foreign_integration_id: String,
    pub max_body_bytes: usize,
    /// A valid sale whose external id is free.
    pub sale: fn(&str) -> Value,
}

/// Percent-encodes everything but unreserved characters, so any string can
/// stand in a path segment.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Every JSON route with a body it accepts and the token it needs.
fn json_routes(c: &Ctx) -> Vec<(Method, String, String, Value)> {
    let sale = (c.sale)("hostile-route-probe");
    vec![
        (
            Method::POST,
            "/v1/sales".into(),
            c.token.clone(),
            sale.clone(),
        ),
        (
            Method::POST,
            "/v1/sales/batch".into(),
            c.token.clone(),
            json!({"sales": [sale]}),
        ),
        (
            Method::POST,
            "/v1/sales/lookup".into(),
            c.token.clone(),
            json!({"external_ids": ["a"]}),
        ),
        (
            Method::POST,
            format!("/v1/sales/{}/status", c.sale_id),
            c.token.clone(),
            json!({"status": "paid"}),
        ),
        (
            Method::POST,
            format!("/v1/sales/{}/forward", c.sale_id),
            c.token.clone(),
            json!({"integration_id": c.integration_id}),
        ),
        (
            Method::POST,
            "/v1/integrations".into(),
            c.token.clone(),
            json!({"name": "n", "target_kind": "webhook", "target_url": "https://x.example/in"}),
        ),
        (
            Method::PATCH,
            format!("/v1/integrations/{}", c.integration_id),
            c.token.clone(),
            json!({"name": "n"}),
        ),
        (
            Method::PUT,
            "/v1/webhook".into(),
            c.token.clone(),
            json!({"url": "https://hooks.example/in"}),
        ),
        (
            Method::POST,
            "/admin/tenants".into(),
            c.admin.clone(),
            json!({"name": "hostile probe"}),
        ),
    ]
}

/// Bodies every JSON route must refuse with 400 (malformed) whatever it expects.
fn malformed_bodies(valid: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty body", vec![]),
        ("whitespace only", b" \n\t ".to_vec()),
        ("10,000 nested arrays", nesting(10_000, false).into_bytes()),
        ("10,000 nested objects", nesting(10_000, true).into_bytes()),
        ("129 nested arrays", nesting(129, false).into_bytes()),
        ("invalid UTF-8 alone", vec![0xff, 0xfe, 0xfd]),
        ("UTF-8 BOM first", [&[0xef, 0xbb, 0xbf][..], valid].concat()),
        ("trailing garbage", [valid, b" x"].concat()),
        ("two documents", [valid, valid].concat()),
        ("NUL byte after", [valid, b"\0"].concat()),
        ("single quotes", b"{'a': 1}".to_vec()),
        ("bare word", b"undefined".to_vec()),
        ("number 1e400", b"1e400".to_vec()),
    ];
    for cut in [
        1,
        valid.len() / 3,
        valid.len() / 2,
        valid.len().saturating_sub(1),
    ] {
        out.push(("truncated", valid[..cut.min(valid.len())].to_vec()));
    }
    // UTF-16 is not UTF-8.
    let utf16: Vec<u8> = String::from_utf8_lossy(valid)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    out.push(("UTF-16LE", utf16));
    out
}

/// A sale's text with invalid UTF-8 inside a string value.
fn with_bad_utf8(valid: &[u8], bad: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(valid).to_string();
    match text.find("Coffee") {
        Some(i) => [&valid[..i], bad, &valid[i..]].concat(),
        None => [valid, bad].concat(),
    }
}

/// Every hand-written case.
pub fn cases(c: &Ctx) -> Vec<Req> {
    let mut out = Vec::new();
    let limit = c.max_body_bytes;
    let sale = |id: &str| (c.sale)(id);
    let valid = bytes(&sale("hostile-valid"));

    // ------------------------------------------------------ every JSON route
    for (method, path, token, body) in json_routes(c) {
        let valid_route = bytes(&body);
        for (_, b) in malformed_bodies(&valid_route) {
            out.push(
                Req::new("malformed body", method.clone(), path.clone())
                    .bearer(&token)
                    .json(b)
                    .expect(&[400]),
            );
        }
        // Past the limit, with a length and streamed without one.
        let mut huge = valid_route.clone();
        huge.resize(limit + 1, b' ');
        out.push(
            Req::new("huge body", method.clone(), path.clone())
                .bearer(&token)
                .json(huge)
                .expect(&[413]),
        );
        out.push(
            Req::new("huge body", method.clone(), path.clone())
                .bearer(&token)
                .header_bytes("content-type", b"application/json")
                .streamed(vec![b' '; 64 * 1024], limit / (64 * 1024) + 2)
                .expect(&[413]),
        );
        // Wrong content types.
        for ct in [
            None,
            Some(&b"text/plain"[..]),
            Some(b"application/x-www-form-urlencoded"),
            Some(b"multipart/form-data; boundary=x"),
            Some(b"application/jsonx"),
            Some(b"json"),
            Some(b"*/*"),
            Some(b"application/\xffjson"),
            Some(b""),
        ] {
            let mut r = Req::new("wrong content type", method.clone(), path.clone()).bearer(&token);
            if let Some(ct) = ct {
                r = r.header_bytes("content-type", ct);
            }
            out.push(r.body(valid_route.clone()).expect(&[415]));
        }
        // No token, a wrong one, an absurd one.
        for t in [
            None,
            Some("sst_wrong".to_string()),
            Some("x".repeat(100_000)),
            Some("' OR 1=1 --".to_string()),
        ] {
            let mut r = Req::new("bad token", method.clone(), path.clone());
            if let Some(t) = t {
                r = r.bearer(&t);
            }
            out.push(r.json(valid_route.clone()).expect(&[401]));
        }
    }

    // ------------------------------------------------------ invalid UTF-8
    for bad in [
        &[0xff][..],
        &[0xc0, 0xaf],             // overlong '/'
        &[0xed, 0xa0, 0x80],       // a surrogate encoded as UTF-8
        &[0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
        &[0xe2, 0x82],             // cut short
        &[0x80],
    ] {
        out.push(
            Req::post("invalid UTF-8", "/v1/sales")
                .bearer(&c.token)
                .json(with_bad_utf8(&valid, bad))
                .expect(&[400]),
        );
    }

    // ------------------------------------------------------ duplicate keys
    let text = String::from_utf8_lossy(&valid).to_string();
    for (what, from, to) in [
        ("top level", "{", "{\"external_id\":\"dup-a\","),
        ("in a line", "{\"category\"", "{\"sku\":\"X\",\"category\""),
        ("in totals", "\"gross\":", "\"gross\":1,\"gross\":"),
        (
            "in metadata",
            "\"channel\":",
            "\"channel\":\"web\",\"channel\":",
        ),
    ] {
        let body = text
            .replacen("hostile-valid", &format!("dup-{}", encode(what)), 1)
            .replacen(from, to, 1)
            .into_bytes();
        assert_ne!(
            body, valid,
            "the duplicate-key case '{what}' changed nothing"
        );
        out.push(
            Req::post(dup_label(what), "/v1/sales")
                .bearer(&c.token)
                .json(body.clone())
                .expect(&[400, 422]),
        );
        let item = String::from_utf8_lossy(&body).replace("hostile-valid", "hostile-dup-batch");
        out.push(
            Req::post(dup_label(what), "/v1/sales/batch")
                .bearer(&c.token)
                .json(format!("{{\"sales\":[{item}]}}").into_bytes())
                .expect(&[200, 400, 422]),
        );
    }
    out.push(
        Req::post("duplicate keys", "/v1/sales/batch")
            .bearer(&c.token)
            .json(b"{\"sales\":[],\"sales\":[]}".to_vec())
            .expect(&[400, 422]),
    );

    // ------------------------------------------------------ batch sizes
    let small = |n: usize| format!("{{\"sales\":[{}]}}", vec!["{}"; n].join(",")).into_bytes();
    for (n, want) in [(0usize, 422u16), (1001, 422), (100_000, 422)] {
        out.push(
            Req::post("absurd batch size", "/v1/sales/batch")
                .bearer(&c.token)
                .json(small(n))
                .expect(&[want]),
        );
    }
    let full = |n: usize, prefix: &str| {
        let items: Vec<Value> = (0..n).map(|i| sale(&format!("{prefix}-{i}"))).collect();
        bytes(&json!({ "sales": items }))
    };
    out.push(
        Req::post("absurd batch size", "/v1/sales/batch")
            .bearer(&c.token)
            .json(full(1001, "too-many"))
            .expect(&[422]),
    );
    out.push(
        Req::post("largest batch", "/v1/sales/batch")
            .bearer(&c.token)
            .json(full(1000, "max-batch"))
            .expect(&[200]),
    );
    for body in [
        json!({"sales": null}),
        json!({"sales": {}}),
        json!({"sales": "x"}),
        json!({}),
        json!([]),
        json!({"sales": [], "extra": 1}),
    ] {
        out.push(
            Req::post("batch shape", "/v1/sales/batch")
                .bearer(&c.token)
                .json(bytes(&body))
                .expect(&[400, 422]),
        );
    }
    out.push(
        Req::post("batch shape", "/v1/sales/batch")
            .bearer(&c.token)
            .json(bytes(
                &json!({"sales": [null, 1, "x", [], {}, sale("batch-shape-ok")]}),
            ))
            .expect(&[200]),
    );

    // ------------------------------------------------------ sale extremes
    let mut extremes: Vec<(&'static str, Value, &'static [u16])> = Vec::new();
    let mut s = sale("x-no-lines");
    s["lines"] = json!([]);
    extremes.push(("no lines", s, &[422]));
    let mut s = sale("x-1001-lines");
    let line = s["lines"][0].clone();
    s["lines"] = Value::Array(vec![line; 1001]);
    extremes.push(("1001 lines", s, &[422]));
    let mut s = sale("x-max-everything");
    for p in ["unit_price", "net_amount", "vat_amount", "discount"] {
        s["lines"][0][p] = json!(i64::MAX);
        s["lines"][1][p] = json!(i64::MIN);
    }
    s["totals"]["net"] = json!(i64::MAX);
    s["totals"]["gross"] = json!(i64::MAX);
    s["payments"][0]["amount"] = json!(i64::MAX);
    s["tip"] = json!(i64::MAX);
    s["totals"]["tip"] = json!(i64::MAX);
    extremes.push(("i64 extremes", s, &[422]));
    let mut s = sale("x-metadata-51");
    s["metadata"] = Value::Object((0..51).map(|i| (format!("k{i}"), json!("v"))).collect());
    extremes.push(("51 metadata entries", s, &[422]));
    let mut s = sale("x-unknown-currency");
    s["currency"] = json!("XXX");
    extremes.push(("unknown currency", s, &[400, 422]));
    let mut s = sale("x-totals-off");
    s["totals"]["gross"] = json!(3511);
    extremes.push(("totals off by one", s, &[422]));
    let mut s = sale("x-negative-sale");
    s["payments"][0]["amount"] = json!(-3510);
    s["totals"]["gross"] = json!(-3510);
    extremes.push(("negative gross", s, &[422]));
    for (label, body, want) in extremes {
        out.push(
            Req::post(label, "/v1/sales")
                .bearer(&c.token)
                .json(bytes(&body))
                .expect(want),
        );
    }
    // Numbers a `Value` cannot hold, spliced into the text.
    for (field, raw, want) in [
        ("\"tip\":0", "\"tip\":1e400", &[400u16][..]),
        // -0 is the whole number 0 (serde_json reads it as a float).
        ("\"tip\":0", "\"tip\":-0", &[201]),
        ("\"tip\":0", "\"tip\":9223372036854775808", &[400]),
        (
            "\"rounding\":0",
            "\"rounding\":-9223372036854775809",
            &[400],
        ),
        (
            "\"quantity\":\"2\"",
            "\"quantity\":2.000000000000000000000000000001",
            &[201, 400, 422],
        ),
        // rust_decimal rounds past 28 decimals (to 2 here); numbers go through
        // f64. Either way the figure validated is the figure stored.
        (
            "\"quantity\":\"2\"",
            "\"quantity\":\"2.000000000000000000000000000001\"",
            &[201, 400, 422],
        ),
        (
            "\"quantity\":\"2\"",
            "\"quantity\":\"0.000000000000000000000000000001\"",
            &[400, 422],
        ),
        ("\"quantity\":\"2\"", "\"quantity\":1e400", &[400]),
        ("\"quantity\":\"2\"", "\"quantity\":\"-0\"", &[422]),
        ("\"vat_rate\":\"21\"", "\"vat_rate\":\"1e400\"", &[400, 422]),
    ] {
        let text = String::from_utf8_lossy(&valid)
            .replacen("hostile-valid", &format!("raw-{}", encode(raw)), 1)
            .replacen(field, raw, 1);
        out.push(
            Req::post("overflowing number", "/v1/sales")
                .bearer(&c.token)
                .json(text.into_bytes())
                .expect(want),
        );
    }

    // ------------------------------------------------------ flow and answers
    // Each refused, naming its field, alone and as a batch item.
    for (i, (change, want, field)) in bad_flows_and_answers().into_iter().enumerate() {
        let mut s = sale(&format!("x-flow-answers-{i}"));
        change(&mut s);
        out.push(
            Req::post("bad flow or answers", "/v1/sales")
                .bearer(&c.token)
                .json(bytes(&s))
                .expect(want)
                .naming(field.clone()),
        );
        s["external_id"] = json!(format!("x-flow-answers-batch-{i}"));
        let batch = json!({"sales": [s]});
        out.push(
            Req::post("bad flow or answers", "/v1/sales/batch")
                .bearer(&c.token)
                .json(bytes(&batch))
                .expect(&[200, 400, 422])
                // An item's own error, or (a NUL, screened before any item
                // is read) the whole body's.
                .naming(field.clone())
                .naming(format!("sales[0].{field}")),
        );
    }
    // Their limits, reached exactly, are fine.
    let mut s = sale("x-flow-answers-max");
    s["flow"] = json!("f".repeat(64));
    s["lines"][0]["answers"] = Value::Object(
        (0..100)
            .map(|i| (format!("q{i}"), json!("a".repeat(2000))))
            .collect(),
    );
    s["lines"][1]["answers"] = json!({"picks": vec!["x"; 500]});
    out.push(
        Req::post("flow and answers at their limits", "/v1/sales")
            .bearer(&c.token)
            .json(bytes(&s))
            .expect(&[201]),
    );

    // ------------------------------------------------------ ids in URLs
    let not_ids = [
        "not-a-uuid".to_string(),
        "00000000-0000-0000-0000-000000000000".into(),
        "\0".into(),
        "' OR 1=1 --".into(),
        "1".into(),
        "-1".into(),
        "9".repeat(5000),
        "../../admin/tenants".into(),
        format!("{{{}}}", c.sale_id),
        format!("urn:uuid:{}", c.sale_id),
        c.sale_id.to_uppercase(),
        format!("{} ", c.sale_id),
        uuid::Uuid::new_v4().to_string(),
        "🧾".into(),
        c.foreign_sale_id.clone(),
        c.foreign_integration_id.clone(),
    ];
    // Spellings of our own sale's id that `Uuid::parse_str` also accepts.
    let own_spellings = [
        format!("{{{}}}", c.sale_id),
        format!("urn:uuid:{}", c.sale_id),
        c.sale_id.to_uppercase(),
    ];
    for id in &not_ids {
        let e = encode(id);
        let want: &[u16] = if own_spellings.contains(id) {
            &[200, 404]
        } else {
            &[404]
        };
        out.push(
            Req::new("id in URL", Method::GET, format!("/v1/sales/{e}"))
                .bearer(&c.token)
                .expect(want),
        );
        out.push(
            Req::post("id in URL", format!("/v1/sales/{e}/status"))
                .bearer(&c.token)
                .json(bytes(&json!({"status": "completed"})))
                .expect(want),
        );
        out.push(
            Req::post("id in URL", format!("/v1/sales/{e}/forward"))
                .bearer(&c.token)
                .json(bytes(&json!({"integration_id": c.integration_id})))
                .expect(&[202, 404]),
        );
        for method in [Method::GET, Method::DELETE] {
            out.push(
                Req::new("id in URL", method, format!("/v1/integrations/{e}"))
                    .bearer(&c.token)
                    .expect(&[404]),
            );
        }
        out.push(
            Req::new("id in URL", Method::PATCH, format!("/v1/integrations/{e}"))
                .bearer(&c.token)
                .json(bytes(&json!({"enabled": true})))
                .expect(&[404]),
        );
        out.push(
            Req::post("id in URL", format!("/v1/integrations/{e}/rotate-secret"))
                .bearer(&c.token)
                .expect(&[404]),
        );
        out.push(
            Req::post("id in URL", format!("/admin/tenants/{e}/tokens"))
                .bearer(&c.admin)
                .json(bytes(&json!({"name": "t"})))
                .expect(&[404]),
        );
    }
    // Bytes that are not UTF-8 once percent-decoded.
    for raw in ["%FF%FE", "%C0%AF", "%ED%A0%80", "%E2%82"] {
        out.push(
            Req::new("id in URL", Method::GET, format!("/v1/sales/{raw}"))
                .bearer(&c.token)
                .expect(&[400, 404]),
        );
        out.push(
            Req::new("id in URL", Method::GET, format!("/v1/integrations/{raw}"))
                .bearer(&c.token)
                .expect(&[400, 404]),
        );
        out.push(
            Req::post("id in URL", format!("/admin/tenants/{raw}/tokens"))
                .bearer(&c.admin)
                .json(bytes(&json!({"name": "t"})))
                .expect(&[400, 404]),
        );
    }

    // ------------------------------------------------------ routes and methods
    let own_sale = format!("/v1/sales/{}", c.sale_id);
    for (method, path, want) in [
        (Method::PUT, "/v1/sales", 405u16),
        (Method::DELETE, own_sale.as_str(), 405),
        (Method::PATCH, "/v1/sales/batch", 405),
        (Method::GET, "/v1/sales/batch", 405),
        (Method::TRACE, "/v1/sales", 405),
        (Method::OPTIONS, "/v1/integrations", 405),
        (Method::GET, "/v1/nope", 404),
        (Method::GET, "/v2/sales", 404),
        (Method::GET, "/v1/sales/", 404),
        (Method::GET, "//v1//sales", 404),
        (Method::GET, "/v1/sales/%2e%2e/%2e%2e/admin", 404),
        (Method::GET, "/.env", 404),
    ] {
        out.push(
            Req::new("unknown route or method", method, path)
                .bearer(&c.token)
                .expect(&[want]),
        );
    }
    if let Ok(m) = Method::from_bytes(b"FUZZ") {
        out.push(
            Req::new("unknown route or method", m, "/v1/sales")
                .bearer(&c.token)
                .expect(&[405]),
        );
    }

    // ------------------------------------------------------ tokens and headers
    let sale_path = format!("/v1/sales/{}", c.sale_id);
    for auth in [
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Basic dXNlcjpwYXNz".to_vec(),
        b"bearer\tsst_x".to_vec(),
        [b"Bearer sst_".as_slice(), &[0xff, 0xfe, 0x80]].concat(),
        format!("Bearer {}", "sst_".repeat(50_000)).into_bytes(),
        format!("Bearer {}", c.admin).into_bytes(),
        format!("Bearer {} {}", c.token, c.token).into_bytes(),
    ] {
        out.push(
            Req::new("bad token", Method::GET, sale_path.clone())
                .header_bytes("authorization", &auth)
                .expect(&[401]),
        );
    }
    out.push(
        Req::post("bad token", "/admin/tenants")
            .bearer(&c.token)
            .json(bytes(&json!({"name": "x"})))
            .expect(&[401]),
    );
    out.push(
        Req::new("integration-only token", Method::GET, "/v1/integrations")
            .bearer(&c.integration_token)
            .expect(&[403]),
    );
    out.push(
        Req::post(
            "integration-only token",
            format!("/v1/sales/{}/status", c.sale_id),
        )
        .bearer(&c.integration_token)
        .json(bytes(&json!({"status": "paid"})))
        .expect(&[403]),
    );
    let long = "x".repeat(64 * 1024);
    for (name, value) in [
        ("traceparent", long.clone().into_bytes()),
        ("traceparent", b"00-zzzz-yyyy-01".to_vec()),
        (
            "traceparent",
            b"ff-00000000000000000000000000000000-0000000000000000-ff".to_vec(),
        ),
        (
            "tracestate",
            format!("{},", "k=v".repeat(10_000)).into_bytes(),
        ),
        ("x-request-id", long.clone().into_bytes()),
        ("content-length", b"-1".to_vec()),
        ("accept", b"\xff\xfe".to_vec()),
    ] {
        out.push(
            Req::new("long or odd header", Method::GET, sale_path.clone())
                .bearer(&c.token)
                .header_bytes(name, &value)
                .expect(&[200]),
        );
    }
    let mut many = Req::new("long or odd header", Method::GET, sale_path.clone()).bearer(&c.token);
    for i in 0..1000 {
        many = many.header_bytes(&format!("x-h{i}"), b"v");
    }
    out.push(many.expect(&[200]));

    // ------------------------------------------------------ NUL and control characters
    for (label, method, path, token, body) in [
        (
            "NUL in status note",
            Method::POST,
            format!("/v1/sales/{}/status", c.sale_id),
            &c.token,
            json!({"status": "nul-note", "note": "a\0b"}),
        ),
        (
            "NUL in status",
            Method::POST,
            format!("/v1/sales/{}/status", c.sale_id),
            &c.token,
            json!({"status": "paid\0"}),
        ),
        (
            "NUL in lookup",
            Method::POST,
            "/v1/sales/lookup".into(),
            &c.token,
            json!({"external_ids": ["a\0b"]}),
        ),
        (
            "NUL in integration name",
            Method::POST,
            "/v1/integrations".into(),
            &c.token,
            json!({"name": "a\0b", "target_kind": "webhook", "target_url": "https://x.example/in"}),
        ),
        (
            "NUL in target URL",
            Method::POST,
            "/v1/integrations".into(),
            &c.token,
            json!({"name": "n", "target_kind": "webhook", "target_url": "https://x.example/\0"}),
        ),
        (
            "NUL in mapping",
            Method::POST,
            "/v1/integrations".into(),
            &c.token,
            json!({"name": "n", "target_kind": "webhook", "target_url": "https://x.example/in", "mapping": {"skus": {"A": "B\0"}}}),
        ),
        (
            "NUL in conditions",
            Method::POST,
            "/v1/integrations".into(),
            &c.token,
            json!({"name": "n", "target_kind": "webhook", "target_url": "https://x.example/in", "conditions": {"skus_any": ["\0"]}}),
        ),
        (
            "NUL in status map",
            Method::POST,
            "/v1/integrations".into(),
            &c.token,
            json!({"name": "n", "target_kind": "webhook", "target_url": "https://x.example/in", "status_map": {"\0": "paid"}, "final_statuses": ["\0"]}),
        ),
        (
            "NUL in credentials",
            Method::POST,
            "/v1/integrations".into(),
            &c.token,
            json!({"name": "n", "target_kind": "webhook", "target_url": "https://x.example/in", "credentials": {"bearer_token": "a\0b"}}),
        ),
        (
            "NUL in integration patch",
            Method::PATCH,
            format!("/v1/integrations/{}", c.integration_id),
            &c.token,
            json!({"name": "a\0"}),
        ),
        (
            "NUL in webhook URL",
            Method::PUT,
            "/v1/webhook".into(),
            &c.token,
            json!({"url": "https://hooks.example/\0"}),
        ),
        (
            "NUL in tenant name",
            Method::POST,
            "/admin/tenants".into(),
            &c.admin,
            json!({"name": "t\0"}),
        ),
        (
            "NUL in token name",
            Method::POST,
            "/admin/tenants".into(),
            &c.admin,
            json!({"name": "tenant with nul token", "token_name": "\0"}),
        ),
    ] {
        out.push(
            Req::new(label, method, path)
                .bearer(token)
                .json(bytes(&body))
                .expect(&[400, 422]),
        );
    }
    let control = "\u{1}\u{1b}[2J\u{7f}\r\n";
    for (label, method, path, token, body) in [
        (
            "control chars in note",
            Method::POST,
            format!("/v1/sales/{}/status", c.sale_id),
            &c.token,
            json!({"status": "ctl-note", "note": control}),
        ),
        (
            "control chars in lookup",
            Method::POST,
            "/v1/sales/lookup".into(),
            &c.token,
            json!({"external_ids": [control]}),
        ),
        (
            "control chars in integration",
            Method::POST,
            "/v1/integrations".into(),
            &c.token,
            json!({"name": control, "target_kind": "webhook", "target_url": format!("https://x.example/{control}")}),
        ),
        (
            "control chars in webhook",
            Method::PUT,
            "/v1/webhook".into(),
            &c.token,
            json!({"url": format!("https://hooks.example/{control}")}),
        ),
    ] {
        out.push(
            Req::new(label, method, path)
                .bearer(token)
                .json(bytes(&body)),
        );
    }

    // ------------------------------------------------------ other routes' limits
    let many_ids: Vec<String> = (0..501).map(|i| format!("id-{i}")).collect();
    out.push(
        Req::post("lookup size", "/v1/sales/lookup")
            .bearer(&c.token)
            .json(bytes(&json!({ "external_ids": many_ids })))
            .expect(&[422]),
    );
    out.push(
        Req::post("lookup size", "/v1/sales/lookup")
            .bearer(&c.token)
            .json(bytes(&json!({"external_ids": ["x".repeat(1_000_000)]})))
            .expect(&[200, 422]),
    );
    out.push(
        Req::post(
            "status note size",
            format!("/v1/sales/{}/status", c.sale_id),
        )
        .bearer(&c.token)
        .json(bytes(
            &json!({"status": "long-note", "note": "n".repeat(1001)}),
        ))
        .expect(&[422]),
    );
    out.push(
        Req::post("integration size", "/v1/integrations")
            .bearer(&c.token)
            .json(bytes(&json!({"name": "n".repeat(10_000), "target_kind": "webhook", "target_url": format!("https://x.example/{}", "a".repeat(10_000))})))
            .expect(&[422]),
    );
    for url in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://",
        "https://exa mple.com",
        "gopher://x",
        "https://[::1",
        "//x.example",
    ] {
        out.push(
            Req::new("webhook URL", Method::PUT, "/v1/webhook")
                .bearer(&c.token)
                .json(bytes(&json!({ "url": url })))
                .expect(&[422]),
        );
    }
    out.push(
        Req::post("tenant name", "/admin/tenants")
            .bearer(&c.admin)
            .json(bytes(&json!({"name": "n".repeat(10_000)})))
            .expect(&[422]),
    );
    out
}

/// A change to a valid sale, the statuses it may get, and the field its
/// error must name.
type BadCase = (Box<dyn Fn(&mut Value)>, &'static [u16], String);

/// Flows and answers the contract refuses (docs/contracts.md, "The sale's
/// flow and answers"); a wrong JSON type is a 400 that names the field too.
fn bad_flows_and_answers() -> Vec<BadCase> {
    let flow = |v: Value| -> Box<dyn Fn(&mut Value)> { Box::new(move |s| s["flow"] = v.clone()) };
    let answer = |key: &'static str, v: Value| -> Box<dyn Fn(&mut Value)> {
        Box::new(move |s| s["lines"][0]["answers"][key] = v.clone())
    };
    let answers = |v: Value| -> Box<dyn Fn(&mut Value)> {
        Box::new(move |s| s["lines"][0]["answers"] = v.clone())
    };
    let f = |s: &str| s.to_string();
    vec![
        (flow(json!("Energy Fixed")), &[422], f("flow")),
        (flow(json!("")), &[422], f("flow")),
        (flow(json!("f".repeat(65))), &[422], f("flow")),
        (flow(json!("../../admin")), &[422], f("flow")),
        (flow(json!("flow\u{1b}[2J")), &[422], f("flow")),
        (flow(json!("a\0b")), &[422], f("flow")),
        (flow(json!(12)), &[400], f("flow")),
        (flow(json!(["energy"])), &[400], f("flow")),
        (
            answer("IBAN", json!("x")),
            &[422],
            f("lines[0].answers.IBAN"),
        ),
        (
            answer("start-date", json!("x")),
            &[422],
            f("lines[0].answers.start-date"),
        ),
        (answer("", json!("x")), &[422], f("lines[0].answers.")),
        (
            answer("iban", json!({"nested": 1})),
            &[422],
            f("lines[0].answers.iban"),
        ),
        (
            answer("extras", json!(["a", ["b"]])),
            &[422],
            f("lines[0].answers.extras[1]"),
        ),
        (
            answer("extras", json!([null])),
            &[422],
            f("lines[0].answers.extras[0]"),
        ),
        (
            answer("extras", json!(vec![1; 501])),
            &[422],
            f("lines[0].answers.extras"),
        ),
        (
            answer("iban", json!("x".repeat(2001))),
            &[422],
            f("lines[0].answers.iban"),
        ),
        (
            answer("iban", json!("a\0b")),
            &[422],
            f("lines[0].answers.iban"),
        ),
        (
            answers(Value::Object(
                (0..101).map(|i| (format!("q{i}"), json!(1))).collect(),
            )),
            &[422],
            f("lines[0].answers"),
        ),
        (
            answers(Value::Object(
                (0..10_000).map(|i| (format!("Q{i}"), json!(1))).collect(),
            )),
            &[422],
            f("lines[0].answers"),
        ),
        (answers(json!([])), &[400], f("lines[0].answers")),
        (answers(json!("iban=x")), &[400], f("lines[0].answers")),
        (answers(Value::Null), &[400], f("lines[0].answers")),
    ]
}

fn dup_label(what: &str) -> &'static str {
    match what {
        "top level" => "duplicate keys (top level)",
        "in a line" => "duplicate keys (line)",
        "in totals" => "duplicate keys (totals)",
        _ => "duplicate keys (metadata)",
    }
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encoding_keeps_unreserved_only() {
        for (raw, want) in [
            ("abc-1_2.3~", "abc-1_2.3~"),
            ("a b", "a%20b"),
            ("\0", "%00"),
            ("../x", "..%2Fx"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(encode(raw), want, "{raw:?}");
        }
    }
}
