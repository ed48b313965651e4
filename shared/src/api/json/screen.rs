//! A first pass over every JSON request body, before it is parsed into its
//! type. It refuses what serde would otherwise let through silently, or what
//! would only fail later, in the database, as a 5xx:
//!
//! - a key repeated inside one object. serde refuses that for structs but
//!   keeps the last value for maps and `Value`s (metadata, mappings, every
//!   item of a batch), so `{"gross": 1, "gross": 2}` would be refused on
//!   `POST /v1/sales` and accepted inside `POST /v1/sales/batch` — and could
//!   mean something else to the next parser downstream;
//! - a NUL character (U+0000) in any string or key: PostgreSQL cannot store
//!   it in `text` or `jsonb`, so the insert would fail as a 503.
//!
//! Deep nesting stops at serde_json's recursion limit (128), which this pass
//! meets first. Found by the bad-input campaign (`tests/fuzz_ingest.rs`).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// Not JSON (syntax, truncation, invalid UTF-8, nesting too deep …).
    Malformed(String),
    /// `key` appears twice in the object at `path` (the key's own path).
    DuplicateKey { path: String, key: String },
    /// A string or key holds U+0000.
    Nul { path: String },
}

/// Walks `bytes` once; `Ok` when it is one JSON value with unique keys and
/// no NUL characters.
pub fn screen(bytes: &[u8]) -> Result<(), Finding> {
    let mut found = None;
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = Walk {
        path: &mut path,
        found: &mut found,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (found, walked) {
        (Some(f), _) => Err(f),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(Finding::Malformed(e.to_string())),
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

/// The API's spelling of a path (`lines[0].name`), as in validation errors.
fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() { "$".into() } else { s }
}

/// Visits one value at `path`; records the first finding and aborts.
struct Walk<'a> {
    path: &'a mut Vec<Seg>,
    found: &'a mut Option<Finding>,
}

impl Walk<'_> {
    fn stop<E: de::Error>(self, finding: Finding) -> E {
        *self.found = Some(finding);
        E::custom("refused by the JSON screen")
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if v.contains('\0') {
            let path = render(self.path);
            return Err(self.stop(Finding::Nul { path }));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.path.push(Seg::Index(i));
            let next = seq.next_element_seed(Walk {
                path: &mut *self.path,
                found: &mut *self.found,
            })?;
            self.path.pop();
            if next.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            self.path.push(Seg::Key(key.clone()));
            if key.contains('\0') {
                let path = render(self.path);
                return Err(self.stop(Finding::Nul { path }));
            }
            if !seen.insert(key.clone()) {
                let path = render(self.path);
                return Err(self.stop(Finding::DuplicateKey { path, key }));
            }
            map.next_value_seed(Walk {
                path: &mut *self.path,
                found: &mut *self.found,
            })?;
            self.path.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nul(path: &str) -> Result<(), Finding> {
        Err(Finding::Nul { path: path.into() })
    }

    fn dup(path: &str, key: &str) -> Result<(), Finding> {
        Err(Finding::DuplicateKey {
            path: path.into(),
            key: key.into(),
        })
    }

    #[test]
    fn screening() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: Vec<(&str, Result<(), Finding>)> = vec![
            (r#"{"a": 1, "b": [true, null, 1.5, -3, "x"]}"#, Ok(())),
            (r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#, Ok(())),
            (r#""plain""#, Ok(())),
            (r#"{"a": 1, "a": 2}"#, dup("a", "a")),
            (
                r#"{"lines": [{}, {"sku": "A", "sku": "B"}]}"#,
                dup("lines[1].sku", "sku"),
            ),
            (
                r#"{"metadata": {"k": "v", "k": "v"}}"#,
                dup("metadata.k", "k"),
            ),
            (r#"{"name": "a\u0000b"}"#, nul("name")),
            (r#"{"x": [1, "\u0000"]}"#, nul("x[1]")),
            (r#"{"m": {"k\u0000": 1}}"#, nul("m.k\0")),
            ("\"\\u0000\"", nul("$")),
            // Other control characters are the routes' business.
            (r#"{"a": "\u0001\n"}"#, Ok(())),
        ];
        for (body, want) in cases {
            assert_eq!(screen(body.as_bytes()), want, "{body}");
        }
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\":1} x",
            b"\xff",
            b"1e400",
            b"\"\\ud800\"",
            deep.as_bytes(),
        ] {
            assert!(
                matches!(screen(bad), Err(Finding::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
