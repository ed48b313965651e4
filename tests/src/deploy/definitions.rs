//! RabbitMQ definitions reduced to what a topology is — names, types,
//! arguments, bindings — so the checked-in file, the generator and a
//! broker's `/api/definitions/{vhost}` can be compared (the broker adds
//! `rabbit_version`, drops `vhost` fields in a per-vhost export, and orders
//! entries as it likes).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What a set of definitions declares, order and vhost aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// name → (type, durable, auto_delete, internal, arguments)
    pub exchanges: BTreeMap<String, String>,
    /// name → (durable, auto_delete, arguments)
    pub queues: BTreeMap<String, String>,
    /// (source, destination, destination_type, routing_key, arguments)
    pub bindings: BTreeSet<String>,
}

impl Topology {
    /// From a definitions document (the file, or a broker's export).
    pub fn of(defs: &Value) -> Self {
        let list = |key: &str| defs[key].as_array().cloned().unwrap_or_default();
        let text = |v: &Value| v.to_string();
        Self {
            exchanges: list("exchanges")
                .iter()
                .map(|e| {
                    let fields = [
                        &e["type"],
                        &e["durable"],
                        &e["auto_delete"],
                        &e["internal"],
                        &e["arguments"],
                    ];
                    (str_of(&e["name"]), fields.map(text).join(" "))
                })
                .collect(),
            queues: list("queues")
                .iter()
                .map(|q| {
                    let fields = [&q["durable"], &q["auto_delete"], &q["arguments"]];
                    (str_of(&q["name"]), fields.map(text).join(" "))
                })
                .collect(),
            bindings: list("bindings")
                .iter()
                .map(|b| {
                    [
                        &b["source"],
                        &b["destination"],
                        &b["destination_type"],
                        &b["routing_key"],
                        &b["arguments"],
                    ]
                    .map(text)
                    .join(" ")
                })
                .collect(),
        }
    }

    /// Where `self` (expected) and `other` (found) differ, one line each.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        diff_maps("exchange", &self.exchanges, &other.exchanges, &mut out);
        diff_maps("queue", &self.queues, &other.queues, &mut out);
        for b in self.bindings.difference(&other.bindings) {
            out.push(format!("binding missing: {b}"));
        }
        for b in other.bindings.difference(&self.bindings) {
            out.push(format!("binding not expected: {b}"));
        }
        out
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn diff_maps(
    what: &str,
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    for (name, want) in expected {
        match found.get(name) {
            None => out.push(format!("{what} {name} missing")),
            Some(got) if got != want => {
                out.push(format!("{what} {name}: expected {want}, found {got}"))
            }
            Some(_) => {}
        }
    }
    for name in found.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(format!("{what} {name} not expected"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_changed_argument_is_a_difference_and_order_is_not() {
        let a = json!({"queues": [
            {"name": "q1", "durable": true, "auto_delete": false, "arguments": {"x-message-ttl": 1000}},
            {"name": "q2", "durable": true, "auto_delete": false, "arguments": {}}]});
        let b = json!({"queues": [
            {"name": "q2", "vhost": "v", "durable": true, "auto_delete": false, "arguments": {}},
            {"name": "q1", "durable": true, "auto_delete": false, "arguments": {"x-message-ttl": 1001}}]});
        let diff = Topology::of(&a).differences(&Topology::of(&b));
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].contains("queue q1"), "{diff:?}");
        assert!(Topology::of(&a).differences(&Topology::of(&a)).is_empty());
    }
}
