//! `RabbitCluster`: one or more `PrivateRabbit` nodes forming one RabbitMQ
//! cluster, for the chaos campaign's "a broker node is lost" fault. The
//! nodes share a fresh Erlang cookie, start side by side, and every node but
//! the first joins the first (`stop_app`, `join_cluster`, `start_app`).
//! Quorum queues declared afterwards get a replica on every node (RabbitMQ
//! 3.x's default initial group size is the cluster size, at most 3 here).
//!
//! Dropping the cluster kills every node at once and removes their
//! directories (each node's `TempDir`); a graceful stop of one member after
//! another would take a minute and prove nothing.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Deserialize;

use crate::rabbit::{PrivateRabbit, new_cookie};

pub struct RabbitCluster {
    nodes: Vec<PrivateRabbit>,
}

/// One queue as `rabbitmqctl list_queues name type leader members online`
/// describes it (`leader`/`members`/`online` are empty for classic queues).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct QueueReplicas {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "node_or_empty")]
    pub leader: String,
    #[serde(default, deserialize_with = "nodes_or_empty")]
    pub members: Vec<String>,
    #[serde(default, deserialize_with = "nodes_or_empty")]
    pub online: Vec<String>,
}

/// `rabbitmqctl` prints `""` or `null` where a classic queue has no leader.
fn node_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// … and `""` (not `[]`) where it has no members.
fn nodes_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Nodes {
        List(Vec<String>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Nodes::deserialize(d)? {
        Nodes::List(v) => v,
        Nodes::Other(_) => Vec::new(),
    })
}

/// Parses `list_queues … --formatter json`.
pub fn parse_queue_replicas(json: &str) -> anyhow::Result<Vec<QueueReplicas>> {
    serde_json::from_str(json.trim()).with_context(|| format!("list_queues printed {json:?}"))
}

/// The node leading the first of `queues` that has a leader (the queues in
/// order of preference): the node whose loss costs the pipeline most.
pub fn leader_of<'a>(replicas: &'a [QueueReplicas], queues: &[&str]) -> Option<&'a str> {
    queues.iter().find_map(|q| {
        replicas
            .iter()
            .find(|r| r.name == *q && !r.leader.is_empty())
            .map(|r| r.leader.as_str())
    })
}

/// Why `queues` are not replicated on all of `nodes` and online there
/// (empty: they are).
pub fn replication_gaps(
    replicas: &[QueueReplicas],
    queues: &[&str],
    nodes: &[&str],
) -> Vec<String> {
    let mut gaps = Vec::new();
    for q in queues {
        let Some(r) = replicas.iter().find(|r| r.name == *q) else {
            gaps.push(format!("{q}: not declared"));
            continue;
        };
        for n in nodes {
            if !r.members.iter().any(|m| m == n) {
                gaps.push(format!("{q}: no replica on {n}"));
            } else if !r.online.iter().any(|m| m == n) {
                gaps.push(format!("{q}: replica on {n} not online"));
            }
        }
        if r.leader.is_empty() {
            gaps.push(format!("{q}: no leader"));
        }
    }
    gaps
}

/// Counts `list_connections pid` lines by the node in each pid
/// (`<sstest-x@localhost.1796580900.24848.1>`: the node, then numbers).
pub fn count_connections_by_node(listed: &str) -> BTreeMap<String, usize> {
    let mut by_node = BTreeMap::new();
    for pid in listed.lines().map(str::trim).filter(|l| l.starts_with('<')) {
        let pid = pid.trim_start_matches('<');
        let Some(at) = pid.find('@') else { continue };
        let host_end = pid[at..].find('.').map_or(pid.len(), |i| at + i);
        *by_node.entry(pid[..host_end].to_string()).or_insert(0) += 1;
    }
    by_node
}

impl RabbitCluster {
    /// Starts `n` nodes (at least one) and clusters them.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        let cookie = new_cookie();
        let starts = (0..n.max(1)).map(|_| PrivateRabbit::start_with_cookie(&cookie));
        let mut cluster = Self {
            nodes: futures::future::try_join_all(starts).await?,
        };
        let first = cluster.nodes[0].node().to_string();
        for node in cluster.nodes.iter_mut().skip(1) {
            node.ctl(&["-q", "stop_app"]).await?;
            node.ctl(&["-q", "join_cluster", &first]).await?;
            node.start_app()
                .await
                .with_context(|| format!("{} did not start after joining", node.node()))?;
        }
        let running = cluster.running_nodes().await?;
        if running.len() != cluster.nodes.len() {
            anyhow::bail!(
                "cluster of {} formed with only {running:?} running",
                cluster.nodes.len()
            );
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> &[PrivateRabbit] {
        &self.nodes
    }

    pub fn node_mut(&mut self, index: usize) -> &mut PrivateRabbit {
        &mut self.nodes[index]
    }

    /// Which node is called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.node() == name)
    }

    /// Every node, comma-separated, as services take it in `AMQP_URL` (one
    /// node: just its URL).
    pub fn amqp_url(&self) -> String {
        self.nodes
            .iter()
            .map(PrivateRabbit::amqp_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The same nodes, listed from node `start` on and around: services given
    /// different starting nodes spread their connections over the cluster
    /// (each process's first connection goes to the first node listed).
    pub fn amqp_url_from(&self, start: usize) -> String {
        let n = self.nodes.len();
        (0..n)
            .map(|i| self.nodes[(start + i) % n].amqp_url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many client connections each node holds.
    pub async fn connections_by_node(&self) -> anyhow::Result<BTreeMap<String, usize>> {
        let out = self
            .ctl(&["-q", "list_connections", "--no-table-headers", "pid"])
            .await?;
        Ok(count_connections_by_node(&out))
    }

    /// `rabbitmqctl <args>` on the first node that is running and answers.
    pub async fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut last = anyhow::anyhow!("no node of the cluster is running");
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            match node.ctl(args).await {
                Ok(out) => return Ok(out),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The nodes the cluster reports running (the RabbitMQ app up).
    pub async fn running_nodes(&self) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Status {
            running_nodes: Vec<String>,
        }
        let out = self
            .ctl(&["-q", "cluster_status", "--formatter", "json"])
            .await?;
        let status: Status = serde_json::from_str(out.trim())
            .with_context(|| format!("cluster_status printed {out:?}"))?;
        Ok(status.running_nodes)
    }

    /// Leader, members and online replicas of every queue.
    pub async fn queue_replicas(&self) -> anyhow::Result<Vec<QueueReplicas>> {
        let out = self
            .ctl(&[
                "-q",
                "list_queues",
                "name",
                "type",
                "leader",
                "members",
                "online",
                "--formatter",
                "json",
            ])
            .await?;
        parse_queue_replicas(&out)
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTED: &str = r#"
[
{"name":"salesync.forward","type":"quorum","leader":"b@localhost","members":["a@localhost","c@localhost","b@localhost"],"online":["a@localhost","b@localhost"]},
{"name":"salesync.sale-events","type":"quorum","leader":"a@localhost","members":["a@localhost","b@localhost","c@localhost"],"online":["a@localhost","b@localhost","c@localhost"]},
{"name":"sstest.capture.x","type":"classic","leader":"","members":"","online":""},
{"name":"salesync.dead","type":"quorum","leader":null,"members":["a@localhost"],"online":[]}
]
"#;

    #[test]
    fn list_queues_json_is_read_with_classic_queues_in_it() {
        let q = parse_queue_replicas(LISTED).unwrap();
        assert_eq!(q.len(), 4);
        assert_eq!(q[0].leader, "b@localhost");
        assert_eq!(q[0].members.len(), 3);
        assert_eq!(q[2].kind, "classic");
        assert!(q[2].members.is_empty() && q[2].leader.is_empty());
        assert!(q[3].leader.is_empty());
        assert!(parse_queue_replicas("Error: nodedown").is_err());
    }

    #[test]
    fn connections_are_counted_by_the_node_in_their_pid() {
        let listed = "<a@localhost.1796580900.24848.1>\n<b@localhost.17.2.1>\n\n<a@localhost.1.2.3>\nnoise\n";
        let by_node = count_connections_by_node(listed);
        assert_eq!(by_node.get("a@localhost"), Some(&2));
        assert_eq!(by_node.get("b@localhost"), Some(&1));
        assert_eq!(by_node.len(), 2);
    }

    #[test]
    fn the_leader_of_the_preferred_queue_is_chosen() {
        let q = parse_queue_replicas(LISTED).unwrap();
        assert_eq!(
            leader_of(&q, &["salesync.forward", "salesync.sale-events"]),
            Some("b@localhost")
        );
        assert_eq!(
            leader_of(&q, &["salesync.sale-events", "salesync.forward"]),
            Some("a@localhost")
        );
        // A queue without a leader is passed over.
        assert_eq!(
            leader_of(&q, &["salesync.dead", "salesync.sale-events"]),
            Some("a@localhost")
        );
        assert_eq!(leader_of(&q, &["nope"]), None);
    }

    #[test]
    fn replication_gaps_name_missing_and_offline_replicas() {
        let q = parse_queue_replicas(LISTED).unwrap();
        let nodes = ["a@localhost", "b@localhost", "c@localhost"];
        assert!(replication_gaps(&q, &["salesync.sale-events"], &nodes).is_empty());
        assert_eq!(
            replication_gaps(&q, &["salesync.forward"], &nodes),
            ["salesync.forward: replica on c@localhost not online"]
        );
        assert_eq!(
            replication_gaps(&q, &["salesync.dead", "gone"], &nodes[..2]),
            [
                "salesync.dead: replica on a@localhost not online",
                "salesync.dead: no replica on b@localhost",
                "salesync.dead: no leader",
                "gone: not declared",
            ]
        );
    }
}
