//! condition-filter: consumes sale events, decides for each of the tenant's
//! integrations whether the sale goes there, records why, and hands the
//! deliveries it creates to the forwarder (through the outbox).
//!
//! consume → decide → emit, one module each:
//! - `decide`: the forwarding rules, pure (`decide`, `integrations_considered`)
//! - `mapping`: what the target receives, pure (`target_request`, `map_sale`)
//! - `plan`: a whole batch decided without I/O
//! - `store`: the batch SQL; `handler`: the consumer's `BatchHandler`
//! - `config`, `service`: settings and wiring (`run`)

pub mod config;
pub mod decide;
pub mod handler;
pub mod mapping;
pub mod plan;
pub mod service;
pub mod store;

pub use config::Config;
pub use service::{SERVICE, run};
