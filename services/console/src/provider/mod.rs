//! The reseller's (A's) side of a tenant-to-tenant integration (issue 17):
//! talking to the provider's (B's) partner routes with the Agent token A was
//! given (`client`), telling a person in plain words whether the connection
//! works (`connection`), and keeping A's copy of what it imported in step
//! with B (`sync`).

pub mod client;
pub mod connection;
