//! status-poller: asks targets for the status of forwarded sales whose target
//! status is not final, maps it through the integration's status map, and
//! emits `StatusUpdate` events (via the outbox) for ingest to apply.
//!
//! claim (`store`) → ask (`lookup` builds, `client` sends) → decide (`plan`)
//! → write + outbox (`store`), paced by `poller`; `config` reads the settings.
//! `retention` removes what settled long ago (off every sale's hot path).

pub mod client;
pub mod config;
pub mod lookup;
pub mod plan;
pub mod poller;
pub mod retention;
pub mod store;
