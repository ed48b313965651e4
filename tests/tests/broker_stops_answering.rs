//! A broker that accepts a connection and then stops answering — seen in the
//! chaos campaign while a RabbitMQ node came back from `stop_app`/`start_app`
//! — must not leave a consumer waiting for ever: opening its channels gives
//! up after `SETUP_TIMEOUT`, it reconnects, and it consumes.
//!
//! A proxy in front of a private vhost relays the first connection's
//! handshake (connection.start, .tune, .open-ok) and then drops everything
//! the broker says on it, so `channel.open` is never answered; every later
//! connection is relayed whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use salesync_core::amqp::consumer::{self, BatchHandler, ConsumerConfig, Message, Outcome};
use salesync_core::amqp::publisher::Publisher;
use salesync_core::amqp::{SETUP_TIMEOUT, topology};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_e2e::{TestVhost, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Frames the broker sends on a connection before any channel exists.
const HANDSHAKE_FRAMES: usize = 3;

struct Idle;

impl BatchHandler for Idle {
    async fn handle(
        &self,
        batch: &[Message],
        _publisher: &Publisher,
    ) -> anyhow::Result<Vec<Outcome>> {
        Ok(batch.iter().map(|_| Outcome::Ack).collect())
    }
}

/// Relays the broker's frames to the client; after `pass` frames, drops the
/// rest (the connection stays open, the broker seems to say nothing).
async fn relay_frames(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    pass: usize,
) {
    let mut relayed = 0;
    loop {
        // type (1), channel (2), size (4), payload, frame-end (1)
        let mut head = [0u8; 7];
        if from.read_exact(&mut head).await.is_err() {
            return;
        }
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let mut rest = vec![0u8; size + 1];
        if from.read_exact(&mut rest).await.is_err() {
            return;
        }
        if relayed < pass {
            relayed += 1;
            if to.write_all(&head).await.is_err() || to.write_all(&rest).await.is_err() {
                return;
            }
        }
    }
}

/// A proxy to `broker` on 127.0.0.1; the first connection goes silent after
/// the handshake. Returns its port and the count of connections accepted.
async fn silencing_proxy(broker: String) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let nth = count.fetch_add(1, Ordering::SeqCst);
            let Ok(upstream) = TcpStream::connect(&broker).await else {
                continue;
            };
            let (mut client_read, client_write) = client.into_split();
            let (upstream_read, mut upstream_write) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
            });
            tokio::spawn(async move {
                // The client's protocol header needs no answer frame of its own.
                let pass = if nth == 0 {
                    HANDSHAKE_FRAMES
                } else {
                    usize::MAX
                };
                relay_frames(upstream_read, client_write, pass).await;
            });
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_broker_stops_answering_reconnects_and_consumes() {
    let vhost = TestVhost::create().await.expect("vhost");
    let url = reqwest::Url::parse(vhost.amqp_url()).expect("AMQP URL");
    let broker = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5672)
    );
    let (port, accepted) = silencing_proxy(broker).await;
    let mut proxied = url.clone();
    proxied.set_port(Some(port)).expect("port");

    let readiness = Readiness::default();
    let ready = readiness.part("consumer");
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let run = tokio::spawn(consumer::run(
        ConsumerConfig {
            amqp_url: proxied.to_string(),
            queue: topology::Q_STATUS,
            prefetch: 10,
            connection_name: "silenced-broker-test".into(),
            retry_delays: Vec::new(),
        },
        Arc::new(Idle),
        ready,
        Metrics::new("silenced-broker-test"),
        shutdown.clone(),
    ));

    let consuming = wait_until(
        SETUP_TIMEOUT + Duration::from_secs(20),
        Duration::from_millis(100),
        || async { readiness.snapshot().values().all(|up| *up) },
    )
    .await;
    let took = started.elapsed();
    println!(
        "consuming after {took:?} and {} connection(s)",
        accepted.load(Ordering::SeqCst)
    );
    assert!(
        consuming.is_ok(),
        "still not consuming after {took:?}: waiting on a broker that does not answer"
    );
    assert!(
        accepted.load(Ordering::SeqCst) >= 2,
        "the premise: the first connection went silent, so a second was needed"
    );
    assert!(
        took >= SETUP_TIMEOUT,
        "consuming before the first connection's setup could time out ({took:?})"
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    vhost.cleanup().await.expect("vhost removed");
}
