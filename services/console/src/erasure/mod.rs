//! Erasing one customer's personal data from a tenant's sales, on request
//! (the tenant through `POST /v1/erasures`, an operator through
//! `POST /admin/tenants/{tenant_id}/erasures`). In one transaction:
//! - the tenant's sales of the customer (by e-mail, VAT number and/or
//!   external ids) are locked;
//! - each sale keeps its amounts, VAT, lines, status and `payload_hash`, and
//!   loses the customer's name, e-mail, VAT number and opt-ins (the country
//!   stays: it decides the VAT); `personal_data_erased_at` is set;
//! - every stored copy is scrubbed the same way: the deliveries' request
//!   bodies, errors and dead reasons, the attempts' response excerpts and
//!   errors, status notes, and outbox rows not yet published;
//! - the erasure is recorded: who, when, how the sales were matched and
//!   which ones — not the personal data itself.
//!
//! The sale stays under its `(tenant, external id)`, and its hash is the hash
//! of the sale as first received: the same sale sent again is recognised as
//! a duplicate (200, nothing stored again), a different one under that id is
//! a conflict, as before the erasure.
//!
//! Not reached: copies already sent to targets (another salesync tenant
//! erases its own copy), messages in flight on the broker, and the raw
//! `salesync.dead` queue (peek and purge it through `/admin/dlq`).

pub mod scrub;

use salesync_core::domain::{FieldError, SaleId, TenantId};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::store::erasures::{self, ErasureRecord, Match, Requester, TextRow};
use salesync_core::api::ApiError;
use salesync_core::api::field_checks::NonBlankText;
use salesync_core::api::json::not_null;
use scrub::{Needles, scrub_column, scrub_json};

/// Most external ids one request may name.
pub const MAX_EXTERNAL_IDS: usize = 500;

/// `POST /v1/erasures` and the admin route: who the customer is. Any
/// combination; a sale matching any of them is erased.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ErasureRequest {
    /// Matched ignoring case.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, max_length = 320, pattern = "\\S.*@|@.*\\S")]
    pub email: Option<String>,
    /// Matched ignoring case and spaces.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = "\\S")]
    pub vat_number: Option<String>,
    /// The sales' own ids.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Vec<NonBlankText>, min_items = 1, max_items = 500)]
    pub external_ids: Option<Vec<String>>,
}

/// A sale that was erased.
#[derive(Serialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct ErasedSale {
    pub id: SaleId,
    pub external_id: String,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Erased {
    pub erasure: ErasureRecord,
    pub sales: Vec<ErasedSale>,
}

/// Checks a request and says how it matches ("email", "vat_number",
/// "external_ids", comma-joined).
pub fn check(req: &ErasureRequest) -> Result<String, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut by = Vec::new();
    if let Some(email) = &req.email {
        if email.trim().is_empty() || email.len() > 320 || !email.contains('@') {
            errors.push(FieldError::new(
                "email",
                "must be an e-mail address (at most 320 characters)",
            ));
        }
        by.push("email");
    }
    if let Some(vat) = &req.vat_number {
        if vat.trim().is_empty() || vat.len() > 64 {
            errors.push(FieldError::new("vat_number", "must be 1 to 64 characters"));
        }
        by.push("vat_number");
    }
    if let Some(ids) = &req.external_ids {
        if ids.is_empty() || ids.len() > MAX_EXTERNAL_IDS {
            errors.push(FieldError::new(
                "external_ids",
                format!("must list 1 to {MAX_EXTERNAL_IDS} external ids"),
            ));
        }
        for (i, id) in ids.iter().enumerate() {
            if id.trim().is_empty() {
                errors.push(FieldError::new(
                    format!("external_ids[{i}]"),
                    "must not be empty",
                ));
            }
        }
        by.push("external_ids");
    }
    if by.is_empty() {
        errors.push(FieldError::new(
            "email",
            "give at least one of email, vat_number, external_ids",
        ));
    }
    if errors.is_empty() {
        Ok(by.join(","))
    } else {
        Err(errors)
    }
}

/// Erases the customer's personal data from the tenant's matching sales and
/// every stored copy, and records it; one transaction.
pub async fn erase(
    pool: &PgPool,
    tenant: TenantId,
    req: &ErasureRequest,
    by: Requester,
) -> Result<Erased, ApiError> {
    let matched_by = check(req).map_err(ApiError::Validation)?;
    let external_ids = req.external_ids.clone().unwrap_or_default();
    let m = Match {
        email: req.email.as_deref().map(str::trim),
        vat_number: req.vat_number.as_deref().map(str::trim),
        external_ids: &external_ids,
    };
    let mut tx = pool.begin().await?;
    let found = erasures::find_and_lock(&mut tx, tenant, &m).await?;
    let ids: Vec<SaleId> = found.iter().map(|s| s.id).collect();
    let mut needles = Needles::new(m.email.into_iter().chain(m.vat_number));
    for s in &found {
        needles.add_from_sale(&s.sale);
    }

    for mut row in erasures::deliveries(&mut tx, tenant, &ids).await? {
        if scrub_row(&mut row, &needles) {
            erasures::update_delivery(&mut tx, &row).await?;
        }
    }
    for mut row in erasures::attempts(&mut tx, tenant, &ids).await? {
        if scrub_row(&mut row, &needles) {
            erasures::update_attempt(&mut tx, &row).await?;
        }
    }
    for mut row in erasures::notes(&mut tx, &ids).await? {
        if scrub_row(&mut row, &needles) {
            erasures::update_note(&mut tx, &row).await?;
        }
    }
    if !ids.is_empty() {
        let patterns: Vec<Vec<u8>> = ids.iter().map(|id| id.to_string().into_bytes()).collect();
        for (id, body) in erasures::outbox_rows(&mut tx, &patterns).await? {
            if let Some(clean) = scrub_bytes(&body, &needles) {
                erasures::update_outbox(&mut tx, id, &clean).await?;
            }
        }
    }
    let mut sales = Vec::with_capacity(found.len());
    for mut s in found {
        scrub_json(&mut s.sale, &needles);
        erasures::update_sale(&mut tx, s.id, &s.sale).await?;
        sales.push(ErasedSale {
            id: s.id,
            external_id: s.external_id,
        });
    }
    let erasure = erasures::record(&mut tx, tenant, &matched_by, &ids, by).await?;
    tx.commit().await?;
    tracing::info!(
        %tenant,
        erasure_id = %erasure.id,
        matched_by,
        sales = sales.len(),
        "personal data erased"
    );
    Ok(Erased { erasure, sales })
}

/// Scrubs a row's JSON and both text columns; whether anything changed.
fn scrub_row(row: &mut TextRow, needles: &Needles) -> bool {
    let mut changed = row.json.as_mut().is_some_and(|j| scrub_json(j, needles));
    for col in [&mut row.a, &mut row.b] {
        if let Some(clean) = scrub_column(col.as_deref(), needles) {
            *col = Some(clean);
            changed = true;
        }
    }
    changed
}

/// An outbox body (an envelope's JSON) scrubbed, or `None` if unchanged. A
/// body that is not JSON is scrubbed as text.
fn scrub_bytes(body: &[u8], needles: &Needles) -> Option<Vec<u8>> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut v) => scrub_json(&mut v, needles).then(|| v.to_string().into_bytes()),
        Err(_) => needles
            .scrub_text(&String::from_utf8_lossy(body))
            .map(String::into_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(req: ErasureRequest) -> Vec<String> {
        check(&req)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.field)
            .collect()
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        assert_eq!(fields(ErasureRequest::default()), ["email"]);
        let bad = ErasureRequest {
            email: Some("not-an-address".into()),
            vat_number: Some(" ".into()),
            external_ids: Some(vec!["a".into(), "".into()]),
        };
        assert_eq!(fields(bad), ["email", "vat_number", "external_ids[1]"]);
        let none = ErasureRequest {
            external_ids: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(fields(none), ["external_ids"]);
        let ok = ErasureRequest {
            email: Some("a@b.c".into()),
            external_ids: Some(vec!["x".into()]),
            ..Default::default()
        };
        assert_eq!(check(&ok), Ok("email,external_ids".to_string()));
    }

    #[test]
    fn outbox_bodies_are_scrubbed_as_json_or_text() {
        let needles = Needles::new(["ada@example.org"]);
        let body = br#"{"payload":{"sale":{"customer":{"email":"ada@example.org"}}}}"#;
        let clean = String::from_utf8(scrub_bytes(body, &needles).unwrap()).unwrap();
        assert!(!clean.contains("ada@"), "{clean}");
        assert_eq!(
            scrub_bytes(b"not json ada@example.org", &needles),
            Some(b"not json [erased]".to_vec())
        );
        assert_eq!(scrub_bytes(br#"{"k":1}"#, &needles), None);
    }
}
