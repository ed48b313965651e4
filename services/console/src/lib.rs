//! console: salesync's control plane — everything a tenant or an operator
//! sets up or repairs, as opposed to the sales that flow (ingest, the data
//! plane). One file per resource under `routes`, the SQL under `store`.
//!
//! `tenancy` provisions tenants and their tokens; `integration_input`
//! checks an integration's configuration; `pause` pauses and resumes
//! integrations (and auto-pauses failing ones); `dead_letters` lists,
//! replays and discards deliveries that failed for good, and
//! `dead_letter_queue` peeks at and purges the raw `salesync.dead` queue;
//! `erasure` takes a customer's personal data out of the tenant's sales;
//! `catalogue_events` files the provider's signed catalogue change
//! callbacks to its partners' subscriptions;
//! `key_rotation` re-encrypts secrets at rest; `openapi` is the control
//! plane's document; `config` is the command
//! line and `cli` the operator's commands that do not serve. Who is calling, the error
//! shape and JSON bodies are shared with ingest (`salesync_core::api`).

pub mod app;
pub mod catalogue_events;
pub mod catalogue_sync;
pub mod cli;
pub mod config;
pub mod dead_letter_queue;
pub mod dead_letters;
pub mod erasure;
pub mod integration_input;
pub mod key_rotation;
pub mod openapi;
pub mod pause;
pub mod provider;
pub mod routes;
pub mod store;
pub mod tenancy;
pub mod web;

pub use app::AppState;
