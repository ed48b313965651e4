//! The SQL of the control plane, one file per table group. Functions take a
//! connection (or the pool for single statements) so the routes decide the
//! transaction boundaries; every query on tenant data is scoped by
//! `tenant_id`.

pub mod agents;
pub mod catalogue;
pub mod dead_letters;
pub mod erasures;
pub mod imports;
pub mod integrations;
pub mod operators;
pub mod organizations;
pub mod pause;
pub mod subscriptions;
pub mod tenants;

/// PostgreSQL's unique_violation, for turning a taken name into a 409.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// PostgreSQL's foreign_key_violation.
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23503"))
}
