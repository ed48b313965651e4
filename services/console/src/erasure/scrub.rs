//! Taking a customer's personal data out of stored JSON and text, without
//! I/O. Two ways, because the data is stored in two kinds of places:
//! - structurally: every `customer` object (the sale as received, the
//!   mapped sale a target was sent, a sale event waiting in the outbox)
//!   loses its name, e-mail, VAT number and opt-ins; the country stays (it
//!   decides which VAT applied, so the books need it);
//! - by value: any string that contains one of the customer's values
//!   ("needles", matched ignoring ASCII case) becomes [`ERASED`] — a
//!   target's answer quoting the e-mail, a note, a metadata value.
//!
//! Amounts, VAT, lines and ids are numbers or strings without the needles,
//! so they stay as they were and the books still add up.

use serde_json::{Map, Value};

/// What an erased string reads afterwards.
pub const ERASED: &str = "[erased]";

/// Values shorter than this are erased only where they stand in a
/// `customer` object: a two-letter name would otherwise blank every string
/// that happens to contain those letters.
const MIN_NEEDLE: usize = 3;

/// Keys whose values identify the sale, not the customer: never rewritten,
/// so the sale keeps its idempotency key and its refund link.
const KEPT_KEYS: &[&str] = &["external_id", "refund_of", "sale_id", "tenant_id", "id"];

/// The personal values to look for, lowercased (ASCII), longest first so a
/// longer value is not half-replaced by a shorter one it contains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needles(Vec<String>);

impl Needles {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut v: Vec<String> = values
            .into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| s.len() >= MIN_NEEDLE)
            .collect();
        v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        v.dedup();
        Self(v)
    }

    /// The personal values of every `customer` object in `sale`.
    pub fn add_from_sale(&mut self, sale: &Value) {
        let Some(customer) = sale.get("customer").and_then(Value::as_object) else {
            return;
        };
        let found: Vec<String> = ["name", "email", "vat_number"]
            .iter()
            .filter_map(|k| customer.get(*k).and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let mut all = std::mem::take(&mut self.0);
        all.extend(found);
        *self = Needles::new(all.iter().map(String::as_str));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every needle found in it erased, or `None` if it has none.
    pub fn scrub_text(&self, text: &str) -> Option<String> {
        let lower = text.to_ascii_lowercase();
        self.0.iter().any(|n| lower.contains(n.as_str())).then(|| {
            // ASCII lowercasing keeps byte offsets, so ranges found in
            // `lower` are ranges of `text`.
            let mut out = text.to_string();
            for n in &self.0 {
                let mut from = 0;
                while let Some(pos) = out.to_ascii_lowercase()[from..].find(n.as_str()) {
                    let start = from + pos;
                    out.replace_range(start..start + n.len(), ERASED);
                    from = start + ERASED.len();
                }
            }
            out
        })
    }
}

/// The customer as it stays after erasure: no name, e-mail, VAT number or
/// consent; the country kept.
fn erased_customer(customer: &Map<String, Value>) -> Value {
    serde_json::json!({
        "name": null,
        "email": null,
        "vat_number": null,
        "country": customer.get("country").cloned().unwrap_or(Value::Null),
        "opt_in": {"marketing_email": false, "marketing_sms": false},
    })
}

/// Scrubs `value` in place (both ways, see the module comment). Returns
/// whether anything changed.
pub fn scrub_json(value: &mut Value, needles: &Needles) -> bool {
    match value {
        Value::String(s) => match needles.scrub_text(s) {
            Some(clean) => {
                *s = clean;
                true
            }
            None => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| scrub_json(v, needles) | changed),
        Value::Object(map) => {
            let mut changed = false;
            for (key, v) in map.iter_mut() {
                if KEPT_KEYS.contains(&key.as_str()) {
                    continue;
                }
                if key == "customer"
                    && let Some(customer) = v.as_object()
                {
                    let erased = erased_customer(customer);
                    if *v != erased {
                        *v = erased;
                        changed = true;
                    }
                    continue;
                }
                changed |= scrub_json(v, needles);
            }
            changed
        }
        _ => false,
    }
}

/// A nullable text column scrubbed: `Some(new)` when it changed.
pub fn scrub_column(text: Option<&str>, needles: &Needles) -> Option<String> {
    text.and_then(|t| needles.scrub_text(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn needles() -> Needles {
        let mut n = Needles::default();
        n.add_from_sale(&json!({"customer": {
            "name": "Ada Lovelace", "email": "Ada@Example.org", "vat_number": "NL123456789B01",
            "country": "NL", "opt_in": {"marketing_email": true, "marketing_sms": true}}}));
        n
    }

    #[test]
    fn text_loses_every_value_whatever_its_case() {
        let n = needles();
        assert_eq!(
            n.scrub_text("400: unknown customer ADA@example.ORG (Ada Lovelace), ada@example.org"),
            Some("400: unknown customer [erased] ([erased]), [erased]".into())
        );
        assert_eq!(n.scrub_text("nothing personal"), None);
        // Short values are not searched for (only erased where they stand).
        assert!(Needles::new(["Al", "  "]).is_empty());
    }

    #[test]
    fn json_keeps_amounts_ids_and_country() {
        let n = needles();
        let mut doc = json!({
            "type": "sale.forwarded",
            "data": {"sale_id": "s-1", "sale": {
                "external_id": "ada@example.org-1",
                "customer": {"name": "Ada Lovelace", "email": "ada@example.org",
                             "vat_number": "NL123456789B01", "country": "NL",
                             "opt_in": {"marketing_email": true, "marketing_sms": false}},
                "metadata": {"note": "call Ada Lovelace"},
                "totals": {"net": 1000, "gross": 1210, "vat": [{"rate": "21", "net": 1000, "vat": 210}]}
            }}
        });
        assert!(scrub_json(&mut doc, &n));
        let sale = &doc["data"]["sale"];
        assert_eq!(
            sale["customer"],
            json!({"name": null, "email": null, "vat_number": null, "country": "NL",
                   "opt_in": {"marketing_email": false, "marketing_sms": false}})
        );
        assert_eq!(sale["metadata"]["note"], "call [erased]");
        assert_eq!(
            sale["external_id"], "ada@example.org-1",
            "the idempotency key stays"
        );
        assert_eq!(sale["totals"]["gross"], 1210);
        assert_eq!(sale["totals"]["vat"][0]["vat"], 210);
        // Scrubbing twice changes nothing more.
        assert!(!scrub_json(&mut doc, &n));
        let dump = doc.to_string().to_ascii_lowercase();
        assert!(!dump.contains("lovelace") && !dump.contains("nl123456789b01"));
    }

    #[test]
    fn a_customer_without_data_is_still_normalised() {
        let mut doc = json!({"customer": {"email": "x@y.z", "country": null}});
        assert!(scrub_json(&mut doc, &Needles::default()));
        assert_eq!(doc["customer"]["email"], Value::Null);
        let mut anonymous = json!({"customer": null, "lines": []});
        assert!(!scrub_json(&mut anonymous, &needles()));
    }
}
