//! The bad-input campaign's machinery (issue 3), shared by `fuzz_ingest.rs`:
//! `client` sends requests through the real router and holds every answer to
//! the API's error contract, `mutate` breaks valid JSON documents in
//! structured ways (proptest strategies), `oracle` says what ingest should
//! answer to a sale body, `phases` are the systematic and random rounds,
//! `hostile` is the hand-written list of nasty requests, and `ledger` checks
//! afterwards that nothing half-written reached the database.

pub mod client;
pub mod hostile;
pub mod ledger;
pub mod mutate;
pub mod oracle;
pub mod phases;
