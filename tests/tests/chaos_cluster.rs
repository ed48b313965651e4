//! The chaos campaign on a 3-node RabbitMQ cluster, in small: a minute of
//! sales through the real services, whose `AMQP_URL` lists all three nodes,
//! while the forwarder is killed and then the node leading the work queues
//! is killed with SIGKILL mid-stream and restarted. The quorum queues keep
//! every accepted message on the surviving majority, the services reconnect
//! to a surviving node, and the ledger must balance: nothing lost, nothing
//! booked twice, every service ready, the node back in the cluster. The
//! recovery steps are printed, never asserted on (the machine is shared).

use salesync_e2e::RabbitCluster;
use salesync_e2e::chaos::{self, CampaignConfig};

const NODE_KILL: &str = "kill -9 rabbitmq node leading the work queues";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_cluster_loses_the_leading_node_and_balances() {
    let cfg = CampaignConfig::cluster_fast();
    let report = chaos::run(&cfg).await.expect("the campaign runs");
    eprintln!("{report}");
    let kinds = report.faults.by_kind();
    assert_eq!(kinds.get(NODE_KILL), Some(&1), "{kinds:?}");
    assert_eq!(kinds.get("kill -9 forwarder"), Some(&1), "{kinds:?}");
    let kill = report
        .faults
        .injected
        .iter()
        .find(|i| i.kind == NODE_KILL)
        .expect("the node kill is logged");
    let steps: Vec<&str> = kill.milestones.iter().map(|(s, _)| s.as_str()).collect();
    assert!(
        steps.contains(&"new leaders elected") && steps.contains(&"node rejoined"),
        "{steps:?}"
    );
    assert!(
        kill.at < report.total,
        "the node is killed while the campaign runs"
    );
    assert_eq!(report.accepted, cfg.sales, "every sale accepted");
    assert!(report.balanced(), "{:?}\n{report}", report.problems());
}

/// The cluster itself: three nodes, quorum queues replicated on all, a
/// killed node's queues led elsewhere, the node back after a restart, and
/// nothing left running or on disk after drop.
#[tokio::test]
async fn a_killed_node_rejoins_and_the_cluster_is_removed_on_drop() {
    use salesync_core::amqp::topology::{self, Q_FORWARD};
    use salesync_e2e::rabbit_cluster::{leader_of, replication_gaps};
    use std::time::Duration;

    let mut cluster = RabbitCluster::start(3).await.expect("cluster");
    let names: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| n.node().to_string())
        .collect();
    let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(cluster.running_nodes().await.expect("status").len(), 3);
    assert_eq!(cluster.amqp_url().split(',').count(), 3);

    let conn = salesync_core::amqp::connect(&cluster.amqp_url(), "cluster-test")
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    topology::declare(&ch).await.expect("topology");
    let _ = conn.close(200, "bye".into()).await;
    let replicas = cluster.queue_replicas().await.expect("list");
    assert!(
        replication_gaps(&replicas, &[Q_FORWARD], &nodes).is_empty(),
        "{replicas:?}"
    );

    let leader = leader_of(&replicas, &[Q_FORWARD])
        .expect("a leader")
        .to_string();
    let victim = cluster.index_of(&leader).expect("a node of ours");
    cluster.node_mut(victim).kill9().await.expect("kill -9");
    assert!(!cluster.nodes()[victim].is_running());
    let moved = salesync_e2e::wait_for(
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let q = cluster.queue_replicas().await.ok()?;
            leader_of(&q, &[Q_FORWARD])
                .filter(|l| *l != leader)
                .map(str::to_string)
        },
    )
    .await;
    assert!(
        moved.is_ok(),
        "no new leader for {Q_FORWARD} after {leader} was killed"
    );

    cluster
        .node_mut(victim)
        .start_again()
        .await
        .expect("start again");
    let rejoined = salesync_e2e::wait_until(
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            cluster
                .queue_replicas()
                .await
                .is_ok_and(|q| replication_gaps(&q, &[Q_FORWARD], &nodes).is_empty())
        },
    )
    .await;
    assert!(rejoined.is_ok(), "{leader} did not rejoin");

    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port()).collect();
    let dirs: Vec<std::path::PathBuf> = cluster
        .nodes()
        .iter()
        .map(|n| n.dir().to_path_buf())
        .collect();
    drop(cluster);
    for (port, dir) in ports.iter().zip(&dirs) {
        assert!(!dir.exists(), "{} removed", dir.display());
        // SIGKILL returns before the VM has exited and closed its sockets:
        // give it a moment rather than racing it.
        let closed = salesync_e2e::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async { std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() },
        )
        .await;
        assert!(closed.is_ok(), "nothing listens on {port} after drop");
    }
}
