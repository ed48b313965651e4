//! The SQL of the data plane, one file per table group. Functions take a
//! connection (or the pool for single statements) so the routes decide the
//! transaction boundaries; every query on tenant data is scoped by
//! `tenant_id`.

pub mod sales;
pub mod status;
