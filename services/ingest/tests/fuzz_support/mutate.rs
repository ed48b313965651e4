//! Structured ways to break a valid JSON document, as proptest strategies.
//! A `Doc` is a `serde_json::Value` plus what a `Value` cannot hold: raw
//! tokens placed verbatim in the text (`1e400`, `-0`, 30-decimal numbers,
//! lone surrogates, 10,000 nested arrays) and keys repeated inside one object.
//! Both travel as unique marker strings and are spliced into the serialized
//! text at the end.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// One step of a path into a document.
#[derive(Clone, Debug, PartialEq)]
pub enum Seg {
    Key(String),
    Idx(usize),
}

/// Every node of `v` (the root is the empty path), depth first.
pub fn paths(v: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    here.push(Seg::Key(k.clone()));
                    walk(child, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    here.push(Seg::Idx(i));
                    walk(child, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// The contract's spelling of a path: `lines[0].quantity`, `$` for the root.
pub fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Idx(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() { "$".into() } else { s }
}

/// The inverse of `render` for simple paths (`totals.vat[0].rate`).
pub fn parse_path(s: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in s.split('.').filter(|p| !p.is_empty() && *p != "$") {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            out.push(Seg::Key(key.to_string()));
        }
        for idx in pieces {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Idx(i));
            }
        }
    }
    out
}

/// The item `pick` chooses (callers make sure `items` is not empty).
fn nth<T>(items: &[T], pick: usize) -> &T {
    &items[pick % items.len()]
}

fn node_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            Seg::Key(k) => cur.as_object_mut()?.get_mut(k)?,
            Seg::Idx(i) => cur.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(cur)
}

/// A value to put into a document.
#[derive(Clone, Debug)]
pub enum Piece {
    Json(Value),
    /// Placed verbatim into the JSON text.
    Raw(String),
}

#[derive(Clone, Debug)]
pub enum Mutation {
    /// Replaces any node.
    Replace { at: usize, with: Piece },
    /// Removes any node but the root.
    Remove { at: usize },
    /// Adds a key the contract does not know to an object.
    AddKey { at: usize, key: String, with: Piece },
    /// Writes one of an object's keys a second time, with another value.
    DuplicateKey { at: usize, key: usize, with: Piece },
    /// Replaces a named node (a field the contract is picky about).
    Set { path: String, with: Piece },
}

const RAW_MARK: &str = "__fuzz_raw_";
const DUP_MARK: &str = "__fuzz_dup_";

/// A document being broken.
#[derive(Clone, Debug)]
pub struct Doc {
    pub value: Value,
    raws: Vec<String>,
    /// Keys written twice: (marker key, real key).
    dups: Vec<String>,
}

impl Doc {
    pub fn new(value: Value) -> Self {
        Self {
            value,
            raws: Vec::new(),
            dups: Vec::new(),
        }
    }

    fn piece(&mut self, p: &Piece) -> Value {
        match p {
            Piece::Json(v) => v.clone(),
            Piece::Raw(r) => {
                self.raws.push(r.clone());
                Value::String(format!("{RAW_MARK}{}__", self.raws.len() - 1))
            }
        }
    }

    /// Removes the node at `path` (not the root); `false` if there is none.
    pub fn remove(&mut self, path: &[Seg]) -> bool {
        let Some((last, parent)) = path.split_last() else {
            return false;
        };
        match (node_mut(&mut self.value, parent), last) {
            (Some(Value::Object(o)), Seg::Key(k)) => o.remove(k).is_some(),
            (Some(Value::Array(a)), Seg::Idx(i)) if *i < a.len() => {
                a.remove(*i);
                true
            }
            _ => false,
        }
    }

    /// Adds `key` to the object at `path`; `false` if it is no object or
    /// already has the key.
    pub fn add_key(&mut self, path: &[Seg], key: &str, with: &Piece) -> bool {
        let v = self.piece(with);
        match node_mut(&mut self.value, path) {
            Some(Value::Object(o)) if !o.contains_key(key) => {
                o.insert(key.to_string(), v);
                true
            }
            _ => false,
        }
    }

    /// Applies a mutation; `false` when its target no longer exists.
    pub fn apply(&mut self, m: &Mutation) -> bool {
        let all = paths(&self.value);
        let objects: Vec<Vec<Seg>> = all
            .iter()
            .filter(|p| node_mut(&mut self.value, p).is_some_and(|v| v.is_object()))
            .cloned()
            .collect();
        match m {
            Mutation::Replace { at, with } => {
                let path = nth(&all, *at).clone();
                let v = self.piece(with);
                match node_mut(&mut self.value, &path) {
                    Some(node) => {
                        *node = v;
                        true
                    }
                    None => false,
                }
            }
            Mutation::Remove { at } => {
                let path = nth(&all, *at).clone();
                self.remove(&path)
            }
            Mutation::AddKey { at, key, with } => {
                if objects.is_empty() {
                    return false;
                }
                let path = nth(&objects, *at).clone();
                self.add_key(&path, key, with)
            }
            Mutation::DuplicateKey { at, key, with } => {
                let with_keys: Vec<&Vec<Seg>> = objects
                    .iter()
                    .filter(|p| {
                        node_mut(&mut self.value, p)
                            .and_then(|v| v.as_object())
                            .is_some_and(|o| !o.is_empty())
                    })
                    .collect();
                if with_keys.is_empty() {
                    return false;
                }
                let path = nth(&with_keys, *at).to_vec();
                let v = self.piece(with);
                let marker = format!("{DUP_MARK}{}__", self.dups.len());
                let Some(Value::Object(o)) = node_mut(&mut self.value, &path) else {
                    return false;
                };
                let keys: Vec<String> = o.keys().cloned().collect();
                let real = nth(&keys, *key).clone();
                o.insert(marker, v);
                self.dups.push(real);
                true
            }
            Mutation::Set { path, with } => {
                let path = parse_path(path);
                let v = self.piece(with);
                match node_mut(&mut self.value, &path) {
                    Some(node) => {
                        *node = v;
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// The JSON text, with raw tokens and repeated keys spliced in, and
    /// whether a repeated key made it into the text.
    pub fn to_bytes(&self) -> (Vec<u8>, bool) {
        let mut text = serde_json::to_string(&self.value).unwrap_or_default();
        for (i, raw) in self.raws.iter().enumerate() {
            text = text.replace(&format!("\"{RAW_MARK}{i}__\""), raw);
        }
        let mut duplicated = false;
        for (i, key) in self.dups.iter().enumerate() {
            let marker = format!("{DUP_MARK}{i}__");
            // A later mutation may have removed the original key again.
            duplicated |= has_twin(&self.value, &marker, key);
            let quoted = serde_json::to_string(key).unwrap_or_default();
            text = text.replace(&format!("\"{marker}\""), &quoted);
        }
        (text.into_bytes(), duplicated)
    }
}

/// Whether some object in `v` holds both `marker` and `key`.
fn has_twin(v: &Value, marker: &str, key: &str) -> bool {
    match v {
        Value::Object(o) => {
            (o.contains_key(marker) && o.contains_key(key))
                || o.values().any(|c| has_twin(c, marker, key))
        }
        Value::Array(a) => a.iter().any(|c| has_twin(c, marker, key)),
        _ => false,
    }
}

/// Whether any string or key in `v` holds a NUL character.
pub fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

// ---------------------------------------------------------------- values

/// Strings that have broken systems before: SQL and JSON injection, markup,
/// format strings, control characters and NUL, tricky Unicode, paths.
pub const HOSTILE_STRINGS: &[&str] = &[
    "' OR '1'='1",
    "'; DROP TABLE sales; --",
    "\"; DROP TABLE outbox; --",
    "1; DELETE FROM sales WHERE 1=1",
    "' UNION SELECT token_hash FROM api_tokens --",
    "$1",
    "$$; SELECT pg_sleep(10); $$",
    "E'\\x00'",
    "\\",
    "\\\\'",
    "%' --",
    "NULL",
    "\\N",
    "\",\"status\":\"paid",
    "\"}],\"totals\":{\"gross\":0},\"x\":[{\"",
    "{\"$ne\":null}",
    "__proto__",
    "constructor",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    "%s%s%s%n",
    "\0",
    "a\0b",
    "\u{1}\u{2}\u{1b}[31mred",
    "\r\n\r\nHTTP/1.1 200 OK",
    "\t",
    "\u{7f}\u{85}",
    "\u{2028}\u{2029}",
    "\u{202e}gnp.exe",
    "\u{feff}bom",
    "\u{200b}",
    "𝕳𝖊𝖑𝖑𝖔 🧾💶",
    "ｅｕｒ",
    "e\u{301}",
    "\u{fffd}",
    "\u{10ffff}",
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "1e400",
    "-0",
    "NaN",
    "",
    " ",
    "   \t ",
];

/// Number-ish (and broken) tokens a `Value` cannot hold, placed verbatim.
pub const RAW_NUMBERS: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "-0.0",
    "0.0",
    "1.5",
    "1E2",
    "1e+2",
    "0.000000000000000000000000000001",
    "1.000000000000000000000000000001",
    "123456789012345678901234567890.123456789012345678901234567890",
    "79228162514264337593543950336",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "01",
    "+1",
    ".5",
    "1.",
    "--1",
];

/// Broken JSON fragments, placed verbatim.
pub const RAW_BROKEN: &[&str] = &[
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\"\\x41\"",
    "\"\\u12\"",
    "\"unterminated",
    "tru",
    "nul",
    "[1,]",
    "{\"a\":1,}",
    "[",
    "}",
    "'single'",
    "undefined",
];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> BoxedStrategy<T> {
    proptest::sample::select(items).boxed()
}

/// Values of the wrong JSON type for almost any field.
pub fn wrong_type() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!("")),
        Just(json!("text")),
        Just(json!([])),
        Just(json!([1, "a", null])),
        Just(json!({})),
        Just(json!({"a": 1})),
        Just(json!([{}])),
    ]
    .boxed()
}

pub fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => pick(HOSTILE_STRINGS).prop_map(str::to_string),
        2 => any::<String>(),
        1 => "[ -~]{0,40}",
        1 => long_string(),
    ]
    .boxed()
}

/// Strings just past the contract's limits, and far past them.
pub fn long_string() -> BoxedStrategy<String> {
    (
        pick(&['a', 'é', '💶', '\'', '\0']),
        pick(&[65usize, 129, 257, 1025, 5000, 100_000]),
    )
        .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect())
        .boxed()
}

/// Nested arrays or objects, `depth` deep.
pub fn nesting(depth: usize, objects: bool) -> String {
    if objects {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

pub fn raw_token() -> BoxedStrategy<String> {
    prop_oneof![
        3 => pick(RAW_NUMBERS).prop_map(str::to_string),
        2 => pick(RAW_BROKEN).prop_map(str::to_string),
        1 => (pick(&[64usize, 127, 128, 129, 1000, 10_000]), any::<bool>())
            .prop_map(|(d, o)| nesting(d, o)),
    ]
    .boxed()
}

/// Any hostile value.
pub fn piece() -> BoxedStrategy<Piece> {
    prop_oneof![
        3 => wrong_type().prop_map(Piece::Json),
        4 => hostile_string().prop_map(|s| Piece::Json(Value::String(s))),
        2 => any::<i64>().prop_map(|n| Piece::Json(json!(n))),
        1 => (-10_000i64..10_000).prop_map(|n| Piece::Json(json!(n))),
        1 => any::<f64>().prop_map(|f| match serde_json::Number::from_f64(f) {
            Some(n) => Piece::Json(Value::Number(n)),
            None => Piece::Raw("NaN".into()),
        }),
        3 => raw_token().prop_map(Piece::Raw),
    ]
    .boxed()
}

/// Keys a contract does not know, some of them lookalikes of real ones.
pub fn unknown_key() -> BoxedStrategy<String> {
    prop_oneof![
        pick(&[
            "x_unknown",
            "__proto__",
            "constructor",
            "$where",
            "",
            "external_id ",
            "External_Id",
            "vat_amout",
            "grosss",
            "id",
            "tenant_id",
            "\0",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ]
    .boxed()
}

/// A random structural mutation; `targets` are named fields worth extra
/// attention, each with the values that probe it best.
pub fn mutation(targets: Vec<(String, BoxedStrategy<Piece>)>) -> BoxedStrategy<Mutation> {
    let generic = prop_oneof![
        4 => (any::<usize>(), piece()).prop_map(|(at, with)| Mutation::Replace { at, with }),
        2 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
        1 => (any::<usize>(), unknown_key(), piece())
            .prop_map(|(at, key, with)| Mutation::AddKey { at, key, with }),
        1 => (any::<usize>(), any::<usize>(), piece())
            .prop_map(|(at, key, with)| Mutation::DuplicateKey { at, key, with }),
    ];
    if targets.is_empty() {
        return generic.boxed();
    }
    let targeted = proptest::strategy::Union::new(targets.into_iter().map(|(path, s)| {
        s.prop_map(move |with| Mutation::Set {
            path: path.clone(),
            with,
        })
        .boxed()
    }));
    prop_oneof![3 => generic, 2 => targeted].boxed()
}

// ------------------------------------------------- sale-specific targets

fn json_of<T: Into<Value> + Clone + std::fmt::Debug + 'static>(
    items: &'static [T],
) -> BoxedStrategy<Piece> {
    pick(items).prop_map(|v| Piece::Json(v.into())).boxed()
}

fn raw_of(items: &'static [&'static str]) -> BoxedStrategy<Piece> {
    pick(items).prop_map(|s| Piece::Raw(s.to_string())).boxed()
}

/// Amounts in minor units: overflow, floats, signs, sums that do not add up.
fn amount() -> BoxedStrategy<Piece> {
    prop_oneof![
        raw_of(&[
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "1e400",
            "-0",
            "0.5",
            "1e3",
            "-1",
        ]),
        any::<i64>().prop_map(|n| Piece::Json(json!(n))),
        (-5000i64..5000).prop_map(|n| Piece::Json(json!(n))),
        json_of(&["100", "", "1,00"]),
    ]
    .boxed()
}

/// Quantities and VAT rates: decimals as numbers or strings, 30 decimals,
/// beyond `Decimal`'s range, zero, negative zero.
fn decimal() -> BoxedStrategy<Piece> {
    prop_oneof![
        raw_of(&[
            "0",
            "-0",
            "0.0000001",
            "1.000000000000000000000000000001",
            "0.000000000000000000000000000001",
            "\"1.000000000000000000000000000001\"",
            "\"0.000000000000000000000000000001\"",
            "1e400",
            "1000000.5",
            "-1000000.5",
            "79228162514264337593543950336",
            "\"79228162514264337593543950336\"",
            "\"NaN\"",
            "\"1e5\"",
            "\"-0\"",
            "\" 2\"",
            "100.01",
            "-0.01",
            "21.125",
            "1e-30",
            "\"21\"",
            "5.5",
        ]),
        any::<f64>().prop_map(|f| match serde_json::Number::from_f64(f) {
            Some(n) => Piece::Json(Value::Number(n)),
            None => Piece::Raw("Infinity".into()),
        }),
        (-5i64..5).prop_map(|n| Piece::Json(json!(n))),
    ]
    .boxed()
}

fn currency() -> BoxedStrategy<Piece> {
    prop_oneof![
        json_of(&[
            "XXX", "XTS", "XAU", "ABC", "eur", "EURO", "EU", "", "€", "E\0R", "EUR ", " EUR", "💶",
            "usd", "Eur",
        ]),
        proptest::collection::vec(proptest::char::range('A', 'Z'), 3)
            .prop_map(|c| Piece::Json(Value::String(c.into_iter().collect()))),
        wrong_type().prop_map(Piece::Json),
    ]
    .boxed()
}

fn timestamp() -> BoxedStrategy<Piece> {
    json_of(&[
        "2025-13-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "not a date",
        "",
        "2025-03-01",
        "+275760-09-13T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "-0001-01-01T00:00:00Z",
        "2025-03-01T12:00:00+25:00",
        "2025-03-01T12:00:00",
        "1970-01-01T00:00:00Z",
        "2025-03-01T12:00:00.1234567890123Z",
        "2025-03-01 12:00:00Z",
    ])
}

fn date() -> BoxedStrategy<Piece> {
    json_of(&[
        "2025-02-30",
        "0000-01-01",
        "+262143-12-31",
        "-262144-01-01",
        "20250301",
        "2025-3-1",
        "2025-03-01T00:00:00Z",
        "",
    ])
}

fn status() -> BoxedStrategy<Piece> {
    prop_oneof![
        json_of(&["Paid", "", "paid ", "paid\0", "../../x", "päid", "a.b"]),
        Just(Piece::Json(json!("a".repeat(65)))),
        hostile_string().prop_map(|s| Piece::Json(Value::String(s))),
    ]
    .boxed()
}

fn metadata() -> BoxedStrategy<Piece> {
    proptest::collection::btree_map(hostile_string(), hostile_string(), 0..60)
        .prop_map(|m| {
            Piece::Json(Value::Object(
                m.into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect::<Map<_, _>>(),
            ))
        })
        .boxed()
}

fn text() -> BoxedStrategy<Piece> {
    hostile_string()
        .prop_map(|s| Piece::Json(Value::String(s)))
        .boxed()
}

/// Named sale fields with the values that probe each best.
pub fn sale_targets() -> Vec<(String, BoxedStrategy<Piece>)> {
    let mut t: Vec<(String, BoxedStrategy<Piece>)> = Vec::new();
    for p in [
        "lines[0].unit_price",
        "lines[0].net_amount",
        "lines[1].vat_amount",
        "lines[1].discount",
        "totals.net",
        "totals.gross",
        "totals.vat[0].vat",
        "totals.rounding",
        "payments[0].amount",
        "tip",
    ] {
        t.push((p.into(), amount()));
    }
    for p in [
        "lines[0].quantity",
        "lines[1].quantity",
        "lines[0].vat_rate",
        "totals.vat[1].rate",
    ] {
        t.push((p.into(), decimal()));
    }
    t.push(("currency".into(), currency()));
    t.push(("occurred_at".into(), timestamp()));
    t.push(("business_date".into(), date()));
    t.push(("status".into(), status()));
    t.push(("metadata".into(), metadata()));
    for p in [
        "external_id",
        "lines[0].name",
        "lines[1].sku",
        "customer.email",
        "customer.country",
        "payments[0].method",
        "refund_of",
    ] {
        t.push((p.into(), text()));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_and_parse_back() {
        let v = json!({"a": [1, {"b": 2}], "c": {}});
        let rendered: Vec<String> = paths(&v).iter().map(|p| render(p)).collect();
        assert_eq!(rendered, ["$", "a", "a[0]", "a[1]", "a[1].b", "c"]);
        for p in paths(&v) {
            assert_eq!(parse_path(&render(&p)), p);
        }
    }

    #[test]
    fn raw_tokens_and_repeated_keys_reach_the_text() {
        let mut d = Doc::new(json!({"a": 1, "b": {"c": 2}}));
        assert!(d.apply(&Mutation::Set {
            path: "b.c".into(),
            with: Piece::Raw("1e400".into()),
        }));
        assert!(d.apply(&Mutation::DuplicateKey {
            at: 0,
            key: 0,
            with: Piece::Json(json!("again")),
        }));
        let (bytes, duplicated) = d.to_bytes();
        let text = String::from_utf8(bytes).unwrap_or_default();
        assert!(duplicated);
        assert!(text.contains("\"c\":1e400"), "{text}");
        assert_eq!(text.matches("\"a\":").count(), 2, "{text}");
    }

    #[test]
    fn removing_and_replacing() {
        let mut d = Doc::new(json!({"a": [1, 2], "b": 3}));
        // Paths: $, a, a[0], a[1], b.
        assert!(!d.apply(&Mutation::Remove { at: 0 }));
        assert!(d.apply(&Mutation::Set {
            path: "a[1]".into(),
            with: Piece::Json(json!("x")),
        }));
        assert_eq!(d.value, json!({"a": [1, "x"], "b": 3}));
        assert!(has_nul(&json!({"k\0": 1})));
        assert!(!has_nul(&d.value));
    }
}
