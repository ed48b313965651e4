//! salesync-core: what every salesync service shares.
//!
//! - `domain`: the sale and its accounting rules (pure, no I/O)
//! - `books`: sales into the books: ledger mapping, documents, journal
//!   entries and the daily closure (pure)
//! - `catalogue`: a provider's products, questions and flows, the checks of an
//!   incoming order and of a reseller's mapping (pure)
//! - `integration`: how a tenant configures forwarding to a target (pure)
//! - `messages`: the envelope and the payload of each queue message
//! - `amqp`: RabbitMQ topology, confirmed publishing and batch consuming
//! - `outbox`: DB→broker hand-off that survives a broker outage
//! - `db`, `config`, `telemetry`, `metrics`, `ops`: plumbing
//! - `egress`: the HTTP client for URLs tenants choose, and the addresses it refuses
//! - `signing`, `crypto`, `tokens`: webhook signatures, secrets at rest, API tokens
//! - `api`: what the API services share: auth, the error shape, JSON bodies, routes
//! - `tenant_webhook`: deliveries to the tenant's own webhook, filed by two services

pub mod amqp;
pub mod api;
pub mod books;
pub mod catalogue;
pub mod catalogue_store;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod egress;
pub mod integration;
pub mod integration_store;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod ops;
pub mod outbox;
pub mod rules;
pub mod signing;
pub mod telemetry;
pub mod tenant_webhook;
pub mod tokens;
