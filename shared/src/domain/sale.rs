//! The sale as it travels between salesync services and out to destinations:
//! an accounting-grade record where every amount is already computed by the
//! source (in minor units) and salesync only checks that the figures add up
//! (see `validation`). The JSON shape is published as
//! `proto/schemas/sale-input.v1.json`; keep the two in step.
//!
//! Input structs deny unknown fields so a misspelt `vat_amout` is rejected
//! instead of silently defaulting and corrupting the books.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::currency::Currency;
use super::money::{Minor, minor_units};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaleInput {
    /// The source's own id; `(tenant, external_id)` is the idempotency key.
    pub external_id: String,
    pub sale_number: Option<String>,
    /// Store / location in the source system.
    pub location_id: Option<String>,
    /// Till / register in the source system.
    pub register_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The trading day the sale belongs to, which for late-night sales is not
    /// necessarily the calendar date of `occurred_at`.
    pub business_date: NaiveDate,
    /// Source status, e.g. "completed", "paid", "refunded"; `[a-z0-9_-]{1,64}`.
    pub status: String,
    pub currency: Currency,
    pub customer: Option<Customer>,
    /// 1 to 1000 lines.
    pub lines: Vec<SaleLine>,
    #[serde(default)]
    pub service_charges: Vec<ServiceCharge>,
    /// Kept apart from revenue; not subject to VAT.
    #[serde(default, deserialize_with = "minor_units")]
    pub tip: Minor,
    pub payments: Vec<Payment>,
    /// `external_id` of the original sale when this sale is a refund.
    pub refund_of: Option<String>,
    pub totals: Totals,
    /// Free-form; at most 50 entries, keys ≤ 64 chars, values ≤ 1024 chars.
    /// A `BTreeMap` so serialization (and therefore `payload_hash`) is canonical.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The provider's flow (sales script or checkout) an order for another
    /// tenant's products was placed through: one of its flow keys,
    /// `[a-z0-9_-]{1,64}`. Optional, and left out when absent so older
    /// sales keep their payload hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: Option<String>,
    pub email: Option<String>,
    pub vat_number: Option<String>,
    /// ISO 3166-1 alpha-2, uppercase.
    pub country: Option<String>,
    #[serde(default)]
    pub opt_in: OptIn,
}

/// Marketing consent as recorded at the till. Defaults to "no" for both: an
/// absent answer is never consent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct OptIn {
    #[serde(default)]
    pub marketing_email: bool,
    #[serde(default)]
    pub marketing_sms: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SaleLine {
    pub line_id: Option<String>,
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub product_ref: Option<String>,
    /// Negative for returns, never zero. Decimal for weighed goods.
    pub quantity: Decimal,
    /// Excluding VAT.
    #[serde(deserialize_with = "minor_units")]
    pub unit_price: Minor,
    /// Discount allocated to this line, excluding VAT; same sign as quantity.
    #[serde(default, deserialize_with = "minor_units")]
    pub discount: Minor,
    /// Percent, e.g. 21, 5.5, 0.
    pub vat_rate: Decimal,
    #[serde(deserialize_with = "minor_units")]
    pub net_amount: Minor,
    #[serde(deserialize_with = "minor_units")]
    pub vat_amount: Minor,
    /// Answers to the provider's questions about this line's product, by
    /// question key (`[a-z0-9_]{1,64}`, at most 100): text (≤ 2000
    /// characters), number, boolean, `null` (no answer) or a list of text,
    /// numbers or booleans. Typed against the questions by the provider
    /// (`catalogue::check_answers`). Left out when empty, as `flow`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "canonical_answers"
    )]
    pub answers: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceCharge {
    pub name: String,
    #[serde(deserialize_with = "minor_units")]
    pub net_amount: Minor,
    pub vat_rate: Decimal,
    #[serde(deserialize_with = "minor_units")]
    pub vat_amount: Minor,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    /// e.g. "cash", "card", "voucher".
    pub method: String,
    /// Negative for a refund.
    #[serde(deserialize_with = "minor_units")]
    pub amount: Minor,
    pub reference: Option<String>,
    /// The original sale's `external_id` when this payment refunds it.
    pub refund_of: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    #[serde(deserialize_with = "minor_units")]
    pub net: Minor,
    /// One entry per VAT rate used on the sale.
    pub vat: Vec<VatTotal>,
    #[serde(deserialize_with = "minor_units")]
    pub gross: Minor,
    #[serde(default, deserialize_with = "minor_units")]
    pub discount: Minor,
    #[serde(default, deserialize_with = "minor_units")]
    pub tip: Minor,
    /// Cash rounding (e.g. to CHF 0.05); included in `gross`.
    #[serde(default, deserialize_with = "minor_units")]
    pub rounding: Minor,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VatTotal {
    pub rate: Decimal,
    #[serde(deserialize_with = "minor_units")]
    pub net: Minor,
    #[serde(deserialize_with = "minor_units")]
    pub vat: Minor,
}

/// Answers with each number spelled one way, the way PostgreSQL's jsonb
/// keeps it: a whole number that fits 64 bits is an integer (`2`, not `2.0`
/// or `2e0`; `1e19` in full) and -0 is 0. Otherwise the stored sale would
/// differ from the one sent, and so would its hash (a resend would conflict).
fn canonical_answers<'de, D>(d: D) -> Result<BTreeMap<String, serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let mut answers = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    answers.values_mut().for_each(canonical_numbers);
    Ok(answers)
}

fn canonical_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(whole) = n.as_f64().and_then(whole_number) {
                *n = whole;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonical_numbers),
        Value::Object(fields) => fields.values_mut().for_each(canonical_numbers),
        _ => {}
    }
}

/// `f` as an integer, when it is a whole number within `i64`/`u64` (those
/// floats are exact integers, so the casts lose nothing).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole_number(f: f64) -> Option<serde_json::Number> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    if f.fract() != 0.0 {
        None
    } else if f == 0.0 {
        // -0 too: jsonb has no negative zero.
        Some(0u64.into())
    } else if f > 0.0 && f < TWO_POW_64 {
        Some((f as u64).into())
    } else if f < 0.0 && f >= i64::MIN as f64 {
        Some((f as i64).into())
    } else {
        None
    }
}

impl SaleInput {
    /// SHA-256 of the canonical JSON form, used to tell "the same sale sent
    /// again" (same hash: acknowledge, do nothing) from "a different payload
    /// under the same external id" (different hash: conflict).
    ///
    /// Hashing the re-serialized struct rather than the received bytes makes
    /// whitespace, key order, omitted-vs-null optionals and timezone offsets
    /// irrelevant. Decimals are normalized first because they serialize with
    /// their scale: `21` and `21.00` are the same rate and must hash the same.
    #[must_use]
    pub fn payload_hash(&self) -> [u8; 32] {
        let mut canonical = self.clone();
        for line in &mut canonical.lines {
            line.quantity = line.quantity.normalize();
            line.vat_rate = line.vat_rate.normalize();
        }
        for charge in &mut canonical.service_charges {
            charge.vat_rate = charge.vat_rate.normalize();
        }
        for total in &mut canonical.totals.vat {
            total.rate = total.rate.normalize();
        }
        // Serializing plain structs, strings, integers and a BTreeMap into a
        // Vec cannot fail; should that ever change, hashing the Debug form
        // still yields a deterministic, content-dependent value rather than a
        // panic on the ingest path.
        let bytes = serde_json::to_vec(&canonical)
            .unwrap_or_else(|_| format!("{canonical:?}").into_bytes());
        Sha256::digest(&bytes).into()
    }

    /// Whether this sale refunds an earlier one.
    #[must_use]
    pub fn is_refund(&self) -> bool {
        self.refund_of.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation::{sample_refund, sample_sale};
    use serde_json::{Map, Value, json};
    use std::collections::BTreeSet;
    use std::str::FromStr;

    const SCHEMA_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto/schemas/sale-input.v1.json"
    );

    fn schema() -> Value {
        let text = std::fs::read_to_string(SCHEMA_PATH).expect("schema file readable");
        serde_json::from_str(&text).expect("schema is valid JSON")
    }

    /// A sample with every optional part populated, so the key comparison
    /// below sees every field of every struct.
    fn full_sample() -> SaleInput {
        let mut sale = sample_sale("full-1");
        sale.service_charges.push(ServiceCharge {
            name: "Delivery".into(),
            net_amount: 500,
            vat_rate: Decimal::from(21),
            vat_amount: 105,
        });
        sale.flow = Some("energy-fixed".into());
        sale.lines[0].answers = BTreeMap::from([
            ("iban".into(), json!("NL91ABNA0417164300")),
            ("extras".into(), json!(["meter_check", 2, true])),
        ]);
        sale
    }

    /// Follows `$ref` and `anyOf`/`oneOf` (used for nullable fields) to the
    /// schema node that declares `properties` or `items`.
    fn resolve<'a>(root: &'a Value, node: &'a Value, want: &str) -> &'a Value {
        if node.get(want).is_some() {
            return node;
        }
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let name = r.strip_prefix("#/$defs/").expect("local $defs ref");
            return resolve(root, &root["$defs"][name], want);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alts) = node.get(key).and_then(Value::as_array) {
                for alt in alts {
                    let found = resolve(root, alt, want);
                    if found.get(want).is_some() {
                        return found;
                    }
                }
            }
        }
        node
    }

    /// Compares the keys serde produces with the schema's `properties`,
    /// recursing into nested objects and arrays of objects. Returns every
    /// (object path, schema node) visited so further checks can reuse them.
    fn compare<'a>(
        root: &'a Value,
        schema: &'a Value,
        value: &Value,
        path: &str,
        visited: &mut Vec<(String, &'a Value)>,
    ) {
        match value {
            Value::Object(obj) => {
                let node = resolve(root, schema, "properties");
                let Some(props) = node.get("properties").and_then(Value::as_object) else {
                    // A map with free-form keys (metadata): nothing to compare.
                    assert!(
                        node.get("additionalProperties").is_some(),
                        "{path}: object without properties or additionalProperties"
                    );
                    return;
                };
                let serde_keys: BTreeSet<&String> = obj.keys().collect();
                let schema_keys: BTreeSet<&String> = props.keys().collect();
                assert_eq!(serde_keys, schema_keys, "field names differ at {path}");
                visited.push((path.to_owned(), node));
                for (k, v) in obj {
                    compare(root, &props[k], v, &format!("{path}.{k}"), visited);
                }
            }
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    let node = resolve(root, schema, "items");
                    compare(root, &node["items"], first, &format!("{path}[0]"), visited);
                }
            }
            _ => {}
        }
    }

    /// Removes the value at `path` (dot/`[0]` separated) from `doc`.
    fn remove_at(doc: &mut Value, path: &str) {
        let mut parts: Vec<&str> = path.split('.').skip(1).collect();
        let last = parts.pop().expect("non-root path");
        let mut cur = doc;
        for part in parts {
            cur = match part.strip_suffix("[0]") {
                Some(name) => &mut cur[name][0],
                None => &mut cur[part],
            };
        }
        cur.as_object_mut()
            .expect("parent is an object")
            .remove(last);
    }

    #[test]
    fn domain_sale_schema_matches_serde_shape() {
        let root = schema();
        assert_eq!(
            root["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(
            root["$id"],
            "https://salesync.dev/schemas/sale-input.v1.json"
        );
        let value = serde_json::to_value(full_sample()).expect("serialize");
        let mut visited = Vec::new();
        compare(&root, &root, &value, "$", &mut visited);
        let paths: BTreeSet<&str> = visited.iter().map(|(p, _)| p.as_str()).collect();
        for expected in [
            "$",
            "$.customer",
            "$.customer.opt_in",
            "$.lines[0]",
            "$.service_charges[0]",
            "$.payments[0]",
            "$.totals",
            "$.totals.vat[0]",
        ] {
            assert!(paths.contains(expected), "did not visit {expected}");
        }

        for (path, node) in &visited {
            // deny_unknown_fields everywhere ⇔ additionalProperties: false.
            assert_eq!(
                node["additionalProperties"],
                Value::Bool(false),
                "{path} must set additionalProperties: false"
            );
            // `required` must list exactly the fields serde cannot do without.
            let required: BTreeSet<&str> = node
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let props = node["properties"].as_object().expect("properties");
            for key in props.keys() {
                let mut doc = value.clone();
                remove_at(&mut doc, &format!("{path}.{key}"));
                let accepted = serde_json::from_value::<SaleInput>(doc).is_ok();
                assert_eq!(
                    !accepted,
                    required.contains(key.as_str()),
                    "{path}.{key}: serde {} it missing but schema says required={}",
                    if accepted { "accepts" } else { "rejects" },
                    required.contains(key.as_str()),
                );
            }
        }
    }

    #[test]
    fn domain_sale_json_roundtrip() {
        for sale in [full_sample(), sample_refund("r-1", "s-1")] {
            let json = serde_json::to_string(&sale).expect("serialize");
            let back: SaleInput = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, sale);
        }
    }

    #[test]
    fn domain_sale_accepts_decimals_as_numbers_or_strings_and_defaults() {
        let json = json!({
            "external_id": "pos-42",
            "occurred_at": "2025-03-01T18:30:00+01:00",
            "business_date": "2025-03-01",
            "status": "completed",
            "currency": "EUR",
            "lines": [{
                "sku": "A", "name": "Apples",
                "quantity": 1.25, "unit_price": 400, "vat_rate": "5.5",
                "net_amount": 500, "vat_amount": 28
            }],
            "payments": [{"method": "cash", "amount": 528}],
            "totals": {"net": 500, "vat": [{"rate": 5.5, "net": 500, "vat": 28}], "gross": 528}
        });
        let sale: SaleInput = serde_json::from_value(json).expect("minimal sale parses");
        assert_eq!(
            sale.lines[0].quantity,
            Decimal::from_str("1.25").expect("dec")
        );
        assert_eq!(
            sale.lines[0].vat_rate,
            Decimal::from_str("5.5").expect("dec")
        );
        assert_eq!(
            sale.totals.vat[0].rate,
            Decimal::from_str("5.5").expect("dec")
        );
        assert_eq!(sale.lines[0].discount, 0);
        assert_eq!(sale.tip, 0);
        assert!(sale.service_charges.is_empty());
        assert!(sale.metadata.is_empty());
        assert!(sale.customer.is_none());
        assert_eq!(sale.occurred_at.to_rfc3339(), "2025-03-01T17:30:00+00:00");
    }

    #[test]
    fn domain_sale_rejects_unknown_fields_and_float_money() {
        let mut value = serde_json::to_value(sample_sale("s-1")).expect("serialize");
        value["lines"][0]["vat_amout"] = json!(1);
        let err = serde_json::from_value::<SaleInput>(value).expect_err("typo rejected");
        assert!(err.to_string().contains("vat_amout"), "{err}");

        let mut value = serde_json::to_value(sample_sale("s-1")).expect("serialize");
        value["totals"]["gross"] = json!(35.10);
        assert!(serde_json::from_value::<SaleInput>(value).is_err());

        let mut value = serde_json::to_value(sample_sale("s-1")).expect("serialize");
        value["currency"] = json!("XYZ");
        let err = serde_json::from_value::<SaleInput>(value).expect_err("bad currency");
        assert!(
            err.to_string()
                .contains("unknown ISO 4217 currency code 'XYZ'"),
            "{err}"
        );
    }

    #[test]
    fn domain_sale_answer_numbers_are_spelled_one_way() {
        // (as sent, as kept): what jsonb would give back.
        let cases = [
            ("2", "2"),
            ("2.0", "2"),
            ("2e0", "2"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("-3.0", "-3"),
            ("2.5", "2.5"),
            ("1.5e-7", "1.5e-7"),
            ("1e19", "10000000000000000000"),
            ("-9.223372036854775808e18", "-9223372036854775808"),
            // Beyond 64 bits: left a float, which jsonb gives back as one.
            ("1e20", "1e+20"),
            ("-1e19", "-1e+19"),
        ];
        for (sent, kept) in cases {
            let mut v = serde_json::to_value(sample_sale("n-1")).expect("serialize");
            let raw: Value = serde_json::from_str(sent).expect("number");
            v["lines"][0]["answers"] = json!({"n": raw.clone(), "list": [raw]});
            let sale: SaleInput = serde_json::from_value(v).expect("parses");
            let a = &sale.lines[0].answers;
            assert_eq!(a["n"].to_string(), kept, "{sent}");
            assert_eq!(a["list"][0].to_string(), kept, "{sent} in a list");
            // Read back from its own JSON, it is the same sale, same hash.
            let back: SaleInput =
                serde_json::from_str(&serde_json::to_string(&sale).expect("json")).expect("back");
            assert_eq!(back, sale, "{sent}");
            assert_eq!(back.payload_hash(), sale.payload_hash(), "{sent}");
        }
    }

    #[test]
    fn domain_sale_payload_hash_is_canonical() {
        let sale = sample_sale("s-1");
        let hash = sale.payload_hash();
        assert_eq!(hash, sample_sale("s-1").payload_hash());

        // Same sale, differently spelled on the wire: key order, a null
        // optional omitted, decimal scale, timezone offset.
        let mut value = serde_json::to_value(&sale).expect("serialize");
        let obj = value.as_object_mut().expect("object");
        obj.remove("refund_of");
        obj.insert("occurred_at".into(), json!("2025-03-01T13:15:00+01:00"));
        value["lines"][0]["vat_rate"] = json!("21.00");
        value["lines"][0]["quantity"] = json!(2);
        let respelled: SaleInput = serde_json::from_value(value).expect("parses");
        assert_eq!(respelled.occurred_at, sale.occurred_at);
        assert_eq!(respelled.payload_hash(), hash);

        let mut changed = sale.clone();
        changed.lines[0].name.push('!');
        assert_ne!(changed.payload_hash(), hash);
        let mut changed = sale.clone();
        changed.metadata.insert("note".into(), "x".into());
        assert_ne!(changed.payload_hash(), hash);
    }

    #[test]
    fn domain_sale_schema_has_defs_for_every_struct() {
        let root = schema();
        let defs: BTreeSet<&String> = root["$defs"]
            .as_object()
            .map(Map::keys)
            .expect("$defs")
            .collect();
        for name in [
            "Answer",
            "Customer",
            "OptIn",
            "SaleLine",
            "ServiceCharge",
            "Payment",
            "Totals",
            "VatTotal",
        ] {
            assert!(defs.contains(&name.to_owned()), "$defs.{name} missing");
        }
    }
}
