//! What ingest should answer to a sale body, decided independently of the
//! router: well-formed JSON of the sale's shape with no repeated keys and no
//! NUL character (PostgreSQL cannot store one) that passes `validate_sale` is
//! accepted; anything else is refused with 400 or 422. The campaign compares
//! every answer with this verdict, so a refused valid sale shows up as
//! clearly as an accepted broken one.

use salesync_core::domain::{SaleInput, validate_sale};
use serde_json::Value;

use super::mutate::has_nul;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accept(Box<SaleInput>),
    Refuse(&'static str),
}

impl Verdict {
    /// The statuses `POST /v1/sales` may answer. An accepted sale may meet an
    /// external id an earlier case already used (200 duplicate, 409 conflict).
    pub fn statuses(&self) -> &'static [u16] {
        match self {
            Verdict::Accept(_) => &[200, 201, 409],
            Verdict::Refuse(_) => &[400, 422],
        }
    }

    /// Whether a batch item's outcome agrees.
    pub fn allows_outcome(&self, outcome: &str) -> bool {
        match self {
            Verdict::Accept(_) => matches!(outcome, "created" | "duplicate" | "conflict"),
            Verdict::Refuse(_) => outcome == "invalid",
        }
    }
}

/// The verdict on one sale body; `duplicated` says whether the text repeats
/// a key inside one object (a `Value` cannot tell).
pub fn sale(bytes: &[u8], duplicated: bool) -> Verdict {
    if duplicated {
        return Verdict::Refuse("repeated key");
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Verdict::Refuse("not JSON");
    };
    if has_nul(&value) {
        return Verdict::Refuse("NUL character");
    }
    match serde_json::from_slice::<SaleInput>(bytes) {
        Err(_) => Verdict::Refuse("not a sale"),
        Ok(s) => match validate_sale(&s) {
            Ok(()) => Verdict::Accept(Box::new(s)),
            Err(_) => Verdict::Refuse("invalid sale"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::sample_sale;

    #[test]
    fn verdicts() {
        let valid = serde_json::to_vec(&sample_sale("o-1")).unwrap_or_default();
        let mut broken = sample_sale("o-2");
        broken.totals.gross += 1;
        let broken = serde_json::to_vec(&broken).unwrap_or_default();
        let nul = String::from_utf8_lossy(&valid).replace("Ada", "A\\u0000da");
        let cases: Vec<(&[u8], bool, bool)> = vec![
            (&valid, false, true),
            (&valid, true, false),
            (&broken, false, false),
            (nul.as_bytes(), false, false),
            (b"{", false, false),
            (b"{}", false, false),
        ];
        for (bytes, duplicated, accept) in cases {
            let v = sale(bytes, duplicated);
            assert_eq!(
                matches!(v, Verdict::Accept(_)),
                accept,
                "{}: {v:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
