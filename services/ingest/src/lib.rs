//! ingest: salesync's data plane — the sales API, the status consumer and
//! the outbox relay.
//!
//! A sale comes in over HTTP (`routes`), is parsed (`salesync_core::api::json`),
//! validated, and planned (`intake`); it is stored and announced in one
//! transaction through the outbox (`accept`, `store`, `events`) — single-sale
//! requests in groups of whatever arrived together (`group_commit`). Statuses
//! carried back from targets come in on `salesync.status` (`status_consumer`,
//! decided by `status_plan`). `app` assembles the router; who is calling, the
//! one error shape and JSON bodies are shared with every API service
//! (`salesync_core::api`). `config` is the command line. Everything a
//! tenant or operator sets up or repairs is the control plane's: `console`.

pub mod accept;
pub mod app;
pub mod config;
pub mod events;
pub mod group_commit;
pub mod intake;
pub mod openapi;
pub mod order_check;
pub mod routes;
pub mod status_consumer;
pub mod status_plan;
pub mod store;

pub use app::{AppState, app};
