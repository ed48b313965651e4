//! ingest: the salesync HTTP API and the status consumer.
//!
//! A sale comes in over HTTP (`routes`), is parsed (`json`), validated, and
//! planned (`intake`); it is stored and announced in one transaction through
//! the outbox (`accept`, `store`, `events`) — single-sale requests in groups
//! of whatever arrived together (`group_commit`). Statuses carried back from targets come in
//! on `salesync.status` (`status_consumer`, decided by `status_plan`).
//! `app` assembles the router, `auth` says who is calling (remembering
//! tokens briefly in `token_cache`, and charges its `rate_limit`), `error` is the one error shape, `config` the command line
//! and `cli` its non-serving commands, `tenancy` provisions tenants.
//! Dead deliveries are listed, replayed and discarded through
//! `dead_letters`; integrations are paused and resumed (and auto-paused)
//! through `pause`; the raw `salesync.dead` queue is peeked and purged through
//! `dead_letter_queue`; `key_rotation` re-encrypts secrets at rest;
//! `erasure` takes a customer's personal data out of the tenant's sales.

pub mod accept;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dead_letter_queue;
pub mod dead_letters;
pub mod erasure;
pub mod error;
pub mod events;
pub mod field_checks;
pub mod group_commit;
pub mod http_layers;
pub mod intake;
pub mod integration_input;
pub mod json;
pub mod key_rotation;
pub mod openapi;
pub mod pause;
pub mod quota;
pub mod rate_limit;
pub mod revocations;
pub mod routes;
pub mod status_consumer;
pub mod status_plan;
pub mod store;
pub mod tenancy;
pub mod token_cache;

pub use app::{AppState, app};
