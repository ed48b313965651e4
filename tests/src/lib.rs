//! salesync-e2e: the harness the end-to-end tests (and the demo) run salesync
//! with. Each piece is a throwaway, real resource cleaned up on drop:
//!
//! - `TestDb`: a uniquely named PostgreSQL database, migrated, dropped after
//! - `TestVhost`: a uniquely named RabbitMQ vhost on the shared broker
//! - `PrivateRabbit`: a whole RabbitMQ node of its own, for outage tests
//! - `RabbitCluster`: several of them clustered, to lose one
//! - `PrivatePostgres`: a whole PostgreSQL cluster of its own, to restart
//! - `Services`: the five service binaries as OS processes, with logs per process
//! - `Api`: a typed client for ingest's HTTP API
//! - `TestTarget`: a programmable downstream HTTP system that records and
//!   verifies what it receives
//! - `OtlpReceiver`: a stand-in OpenTelemetry collector that keeps the spans
//!   the services export
//! - `Broker`: AMQP helpers to capture, inject and count messages
//! - `Stack`: all of the above wired together for one test
//! - `wait`, `sales`, `schemas`: polling, sample sales, message JSON Schemas
//! - `fuzz`: the contract fuzz run's tools (schemathesis, an OpenAPI validator)
//! - `chaos`: the fault campaign (`salesync-chaos`, `chaos_fast`) on all of it

pub mod api;
pub mod broker;
pub mod browser;
pub mod chaos;
pub mod db;
pub mod deploy;
pub mod fuzz;
pub mod otlp;
pub mod partner;
pub mod pg;
pub mod ports;
pub mod prometheus;
pub mod rabbit;
pub mod rabbit_cluster;
pub mod sales;
pub mod schemas;
pub mod services;
pub mod stack;
pub mod target;
pub mod temp;
pub mod vhost;
pub mod wait;

pub use api::{Api, IntegrationInput};
pub use broker::{Broker, Capture};
pub use db::TestDb;
pub use otlp::{Collector, OtlpReceiver, ReceivedSpan};
pub use pg::PrivatePostgres;
pub use rabbit::PrivateRabbit;
pub use rabbit_cluster::RabbitCluster;
pub use services::{Replicas, ServiceKind, Services, ServicesConfig};
pub use stack::{Stack, StackOptions, Tenant};
pub use target::{Behaviour, TestTarget};
pub use vhost::TestVhost;
pub use wait::{wait_for, wait_until};
