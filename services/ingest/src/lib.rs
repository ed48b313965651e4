//! ingest: the salesync HTTP API and the status consumer.
//!
//! A sale comes in over HTTP (`routes`), is parsed (`salesync_core::api::json`),
//! validated, and planned (`intake`); it is stored and announced in one
//! transaction through the outbox (`accept`, `store`, `events`) — single-sale
//! requests in groups of whatever arrived together (`group_commit`). Statuses
//! carried back from targets come in on `salesync.status` (`status_consumer`,
//! decided by `status_plan`). `app` assembles the router; who is calling, the
//! one error shape and JSON bodies are shared with every API service
//! (`salesync_core::api`). `config` is the command line and `cli` its
//! non-serving commands, `tenancy` provisions tenants.
//! Dead deliveries are listed, replayed and discarded through
//! `dead_letters`; integrations are paused and resumed (and auto-paused)
//! through `pause`; the raw `salesync.dead` queue is peeked and purged through
//! `dead_letter_queue`; `key_rotation` re-encrypts secrets at rest;
//! `erasure` takes a customer's personal data out of the tenant's sales.

pub mod accept;
pub mod app;
pub mod cli;
pub mod config;
pub mod dead_letter_queue;
pub mod dead_letters;
pub mod erasure;
pub mod events;
pub mod group_commit;
pub mod intake;
pub mod integration_input;
pub mod key_rotation;
pub mod openapi;
pub mod pause;
pub mod routes;
pub mod status_consumer;
pub mod status_plan;
pub mod store;
pub mod tenancy;

pub use app::{AppState, app};
