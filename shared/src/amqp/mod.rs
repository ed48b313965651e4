//! RabbitMQ: the topology every service declares, a publisher that waits for
//! broker confirms (pipelined, never one at a time), and a batch consumer loop
//! with manual acks that reconnects on its own.

pub mod acks;
pub mod bundle;
pub mod consumer;
pub mod definitions;
pub mod isolate;
pub mod publisher;
pub mod topology;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

/// The largest AMQP frame we ask for unless the URL sets `frame_max`. lapin
/// keeps 32 frames of send and of receive buffer per connection, zero-filled:
/// at RabbitMQ's default of 128 KiB that is 8 MiB of resident memory per
/// connection, most of a service's idle footprint. Sales are a few KiB; a
/// larger message is simply split into several frames.
pub const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// How long one broker node may take to accept a connection before the next
/// listed node is tried (a node cut off by the network never answers).
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which listed node the next connection tries first: successive connections
/// (and reconnects after a node is lost) go round the cluster.
static NEXT_NODE: AtomicUsize = AtomicUsize::new(0);

/// Opens one connection, naming it so the management UI shows who it is.
///
/// `urls` is one AMQP URL or several nodes of one cluster, comma-separated
/// (`amqp://u:p@mq1:5672/%2f,amqp://u:p@mq2:5672/%2f`): each is tried in
/// turn until one accepts, starting from the node after the one the previous
/// connection tried first.
pub async fn connect(urls: &str, name: &str) -> lapin::Result<Connection> {
    let nodes = node_uris(urls).map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
    let first = NEXT_NODE.fetch_add(1, Ordering::Relaxed);
    let mut last_error = None;
    for i in 0..nodes.len() {
        let uri = nodes[(first + i) % nodes.len()].clone();
        let node = format!("{}:{}", uri.authority.host, uri.authority.port);
        let props = ConnectionProperties::default().with_connection_name(name.to_string().into());
        let error =
            match tokio::time::timeout(NODE_CONNECT_TIMEOUT, Connection::connect_uri(uri, props))
                .await
            {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) => e,
                Err(_) => lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{node} did not accept a connection within {NODE_CONNECT_TIMEOUT:?}"),
                )),
            };
        if nodes.len() > 1 {
            tracing::warn!(%node, error = %error, "RabbitMQ node not reachable; trying the next");
        }
        last_error = Some(error);
    }
    Err(last_error.expect("node_uris never returns an empty list"))
}

/// The nodes of a comma-separated `AMQP_URL`, each as [`connection_uri`] reads it.
fn node_uris(urls: &str) -> Result<Vec<AMQPUri>, String> {
    let nodes = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(connection_uri)
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        return Err("AMQP_URL names no broker".into());
    }
    Ok(nodes)
}

/// Parses an AMQP URL, asking for [`DEFAULT_FRAME_MAX`] unless it says otherwise.
fn connection_uri(url: &str) -> Result<AMQPUri, String> {
    let mut uri: AMQPUri = url.parse()?;
    uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
    Ok(uri)
}

/// Longest a connected broker may take over one setup step (open a channel,
/// declare the topology, start consuming, close the channels).
/// A broker can accept a connection and then never answer — seen while a
/// node boots after `stop_app`/`start_app` — and lapin waits on such an
/// answer for ever; past this the step fails and the caller reconnects.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// `step`, or an error naming `what` once it has waited [`SETUP_TIMEOUT`].
pub async fn within_setup<T>(
    what: &str,
    step: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(SETUP_TIMEOUT, step)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the broker did not answer within {SETUP_TIMEOUT:?} while {what}"
            ))
        })
}

/// How long a close may wait for the broker's confirmation: a connection
/// whose broker stopped answering never confirms, and is dropped anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Closes `conn`, giving up after [`CLOSE_TIMEOUT`].
pub async fn close_quietly(conn: &Connection) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "bye".into())).await;
}

/// Connects, retrying with capped exponential backoff until it works or
/// `shutdown` fires (then `None`).
pub async fn connect_with_retry(
    url: &str,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    let mut delays = reconnect_backoff();
    loop {
        match connect(url, name).await {
            Ok(c) => return Some(c),
            Err(e) => {
                let wait = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in = ?wait, "RabbitMQ not reachable");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Endless jittered backoff between 100 ms and 5 s for reconnect loops.
pub fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// String-valued AMQP headers (trace context, dead-letter reason …) as a map.
pub fn headers_to_map(table: Option<&FieldTable>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    if let Some(t) = table {
        for (k, v) in t {
            let s = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.to_string(),
                AMQPValue::LongLongInt(n) => n.to_string(),
                AMQPValue::LongInt(n) => n.to_string(),
                _ => continue,
            };
            map.insert(k.to_string(), s);
        }
    }
    map
}

pub fn map_to_headers(map: &BTreeMap<String, String>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in map {
        t.insert(k.clone().into(), AMQPValue::LongString(v.clone().into()));
    }
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_max_defaults_small_but_the_url_wins() {
        let uri = super::connection_uri("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(uri.query.frame_max, Some(super::DEFAULT_FRAME_MAX));
        assert_eq!(uri.vhost, "/");
        let uri = super::connection_uri("amqp://127.0.0.1/v?frame_max=131072").unwrap();
        assert_eq!(uri.query.frame_max, Some(131072));
        assert!(super::connection_uri("not a url").is_err());
    }

    #[test]
    fn several_nodes_are_listed_with_commas() {
        let nodes = super::node_uris(
            "amqp://guest:guest@10.0.0.1:5672/%2f, amqp://guest:guest@mq2:5673/%2f,",
        )
        .unwrap();
        let hosts: Vec<_> = nodes
            .iter()
            .map(|n| {
                (
                    n.authority.host.as_str(),
                    n.authority.port,
                    n.query.frame_max,
                )
            })
            .collect();
        assert_eq!(
            hosts,
            [
                ("10.0.0.1", 5672, Some(super::DEFAULT_FRAME_MAX)),
                ("mq2", 5673, Some(super::DEFAULT_FRAME_MAX))
            ]
        );
        assert!(super::node_uris(" , ").is_err());
        assert!(super::node_uris("amqp://a/%2f,nope").is_err());
    }

    #[tokio::test]
    async fn a_node_that_is_down_is_skipped_for_the_next() {
        let live = std::env::var("AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        // Port 1: nothing listens, the connection is refused at once.
        let urls = format!("amqp://guest:guest@127.0.0.1:1/%2f,{live}");
        // Whichever node a connection starts from, each one gets through.
        for _ in 0..3 {
            let conn = super::connect(&urls, "node-failover-test").await.unwrap();
            assert!(conn.status().connected());
            conn.close(200, "bye".into()).await.unwrap();
        }
        let err = super::connect("amqp://guest:guest@127.0.0.1:1/%2f", "x").await;
        assert!(err.is_err());
    }
}
