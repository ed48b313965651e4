//! The fault schedule, as data: which faults one round of the campaign
//! injects and in what order. Two lanes run side by side — infrastructure
//! faults (processes, broker, database) one after another, and windows in
//! which the two flaky targets misbehave — so a round fits the time a few
//! thousand sales take to post. Every kind occurs once per round; rounds
//! repeat while sales are still being posted. On a RabbitMQ cluster the
//! broker's graceful stop gives way to the crash of the node that leads the
//! work queues; a `Plan::Once` runs a short list of faults a single time.

use std::time::Duration;

use crate::services::ServiceKind;
use crate::target::Behaviour;

/// One fault of the infrastructure lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfraFault {
    /// `kill -9` one process of a service, then start it again.
    Kill {
        service: ServiceKind,
        replica: usize,
    },
    /// `kill -9` two replicas of one service at once, then start both.
    KillPair { service: ServiceKind },
    /// `rabbitmqctl stop_app`, a pause, `start_app`.
    BrokerStopStart,
    /// `rabbitmqctl close_all_connections` (on every node of a cluster).
    BrokerCloseConnections,
    /// `kill -9` of the cluster node leading the work queues, then start it
    /// again and wait until it has rejoined.
    BrokerNodeKill,
    /// `pg_ctl restart -m fast`.
    PostgresRestart,
}

impl InfraFault {
    /// The label the summary counts faults by.
    pub fn kind(&self) -> String {
        match self {
            InfraFault::Kill { service, .. } => format!("kill -9 {service}"),
            InfraFault::KillPair { service } => format!("kill -9 two {service} replicas"),
            InfraFault::BrokerStopStart => "rabbitmq stop_app/start_app".into(),
            InfraFault::BrokerCloseConnections => "rabbitmq close_all_connections".into(),
            InfraFault::BrokerNodeKill => "kill -9 rabbitmq node leading the work queues".into(),
            InfraFault::PostgresRestart => "postgresql restart -m fast".into(),
        }
    }
}

/// How a flaky target misbehaves during one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetFault {
    /// Every request: 500.
    Http500,
    /// Each key's first request: 429 with `Retry-After`.
    RetryAfter,
    /// Every request hangs past the forwarder's timeout, then the connection closes.
    Hang,
    /// The connection closes inside the status line.
    CloseInHead,
    /// A 200 head, then the connection closes inside the body.
    CloseInBody,
    /// 200 with a body that is not JSON.
    Garbage,
}

impl TargetFault {
    pub const ALL: [TargetFault; 6] = [
        TargetFault::Http500,
        TargetFault::RetryAfter,
        TargetFault::Hang,
        TargetFault::CloseInHead,
        TargetFault::CloseInBody,
        TargetFault::Garbage,
    ];

    /// The target behaviour; `hang` is how long a hung request is held.
    pub fn behaviour(&self, hang: Duration) -> Behaviour {
        match self {
            TargetFault::Http500 => Behaviour::Always(500),
            TargetFault::RetryAfter => Behaviour::RetryAfter(1),
            TargetFault::Hang => Behaviour::Hang(hang),
            TargetFault::CloseInHead => Behaviour::CloseInHead,
            TargetFault::CloseInBody => Behaviour::CloseInBody,
            TargetFault::Garbage => Behaviour::Garbage,
        }
    }

    pub fn kind(&self) -> String {
        let what = match self {
            TargetFault::Http500 => "answers 500",
            TargetFault::RetryAfter => "answers 429 Retry-After",
            TargetFault::Hang => "hangs past the timeout",
            TargetFault::CloseInHead => "closes mid-head",
            TargetFault::CloseInBody => "closes mid-body",
            TargetFault::Garbage => "answers 200 garbage",
        };
        format!("target {what}")
    }
}

/// One window of the target lane: what flaky target A and B do meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub a: TargetFault,
    pub b: TargetFault,
}

/// Which service loses two replicas at once, round after round (the
/// forwarder first: it holds the most in flight).
const PAIR_ROTATION: [ServiceKind; 4] = [
    ServiceKind::Forwarder,
    ServiceKind::Ingest,
    ServiceKind::ConditionFilter,
    ServiceKind::StatusPoller,
];

/// One round of faults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub infra: Vec<InfraFault>,
    pub windows: Vec<Window>,
}

/// What the lanes inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Round after round of every fault while sales are posted.
    Rounds {
        replicas: usize,
        /// RabbitMQ nodes; more than one: a cluster, see [`cluster_round`].
        broker_nodes: usize,
    },
    /// These infrastructure faults once, in order, and no target windows.
    Once(Vec<InfraFault>),
}

impl Plan {
    /// Round `n` (0-based), or `None` when the plan has no more.
    pub fn round(&self, n: usize) -> Option<Round> {
        match self {
            Plan::Rounds {
                replicas,
                broker_nodes,
            } if *broker_nodes > 1 => Some(cluster_round(*replicas, n)),
            Plan::Rounds { replicas, .. } => Some(round(*replicas, n)),
            Plan::Once(infra) => (n == 0).then(|| Round {
                infra: infra.clone(),
                windows: Vec::new(),
            }),
        }
    }
}

/// A round on a RabbitMQ cluster: as [`round`], with the node leading the
/// work queues killed where a single node's app is stopped (a graceful
/// stop of one member hands its leaders over; a crash is the harder loss).
pub fn cluster_round(replicas: usize, n: usize) -> Round {
    let mut r = round(replicas, n);
    for f in &mut r.infra {
        if *f == InfraFault::BrokerStopStart {
            *f = InfraFault::BrokerNodeKill;
        }
    }
    r
}

/// Round `round` (0-based) for `replicas` processes per service. Each
/// component is hit in turn and never twice in a row; which replica is
/// killed and which service loses two at once rotate between rounds. The
/// flaky targets run every misbehaviour, B three steps behind A, so at any
/// time they misbehave differently.
pub fn round(replicas: usize, round: usize) -> Round {
    let replica = if replicas > 1 { round % replicas } else { 0 };
    let kill = |service| InfraFault::Kill { service, replica };
    let mut infra = vec![
        kill(ServiceKind::Forwarder),
        InfraFault::BrokerCloseConnections,
        kill(ServiceKind::ConditionFilter),
        InfraFault::PostgresRestart,
        kill(ServiceKind::Ingest),
        InfraFault::BrokerStopStart,
        kill(ServiceKind::StatusPoller),
    ];
    if replicas >= 2 {
        let service = PAIR_ROTATION[round % PAIR_ROTATION.len()];
        // Between two faults that do not touch the same service.
        let after = if service == ServiceKind::StatusPoller {
            InfraFault::BrokerCloseConnections
        } else {
            InfraFault::BrokerStopStart
        };
        let at = infra.iter().position(|f| *f == after).map_or(0, |i| i + 1);
        infra.insert(at, InfraFault::KillPair { service });
    }
    let n = TargetFault::ALL.len();
    let windows = (0..n)
        .map(|i| Window {
            a: TargetFault::ALL[i],
            b: TargetFault::ALL[(i + n / 2) % n],
        })
        .collect();
    Round { infra, windows }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_fault_kind_occurs_once_per_round() {
        for (replicas, infra_len, pair) in [(1, 7, false), (2, 8, true), (3, 8, true)] {
            let r = round(replicas, 0);
            assert_eq!(r.infra.len(), infra_len, "replicas {replicas}");
            let killed: BTreeSet<ServiceKind> = r
                .infra
                .iter()
                .filter_map(|f| match f {
                    InfraFault::Kill { service, .. } => Some(*service),
                    _ => None,
                })
                .collect();
            assert_eq!(killed.len(), 4, "each service killed once");
            for f in [
                InfraFault::BrokerStopStart,
                InfraFault::BrokerCloseConnections,
                InfraFault::PostgresRestart,
            ] {
                assert_eq!(r.infra.iter().filter(|x| **x == f).count(), 1, "{f:?}");
            }
            assert_eq!(
                r.infra
                    .iter()
                    .any(|f| matches!(f, InfraFault::KillPair { .. })),
                pair
            );
            let a: BTreeSet<_> = r.windows.iter().map(|w| w.a.kind()).collect();
            let b: BTreeSet<_> = r.windows.iter().map(|w| w.b.kind()).collect();
            assert_eq!(a.len(), TargetFault::ALL.len());
            assert_eq!(b.len(), TargetFault::ALL.len());
            assert!(r.windows.iter().all(|w| w.a != w.b));
        }
    }

    #[test]
    fn rounds_rotate_replicas_and_the_pair() {
        let victim = |r: &Round| match r.infra[0] {
            InfraFault::Kill { replica, .. } => replica,
            _ => usize::MAX,
        };
        let pair = |r: &Round| {
            r.infra.iter().find_map(|f| match f {
                InfraFault::KillPair { service } => Some(*service),
                _ => None,
            })
        };
        for (replicas, n, replica, service) in [
            (1, 0, 0, None),
            (1, 1, 0, None),
            (2, 0, 0, Some(ServiceKind::Forwarder)),
            (2, 1, 1, Some(ServiceKind::Ingest)),
            (2, 2, 0, Some(ServiceKind::ConditionFilter)),
            (2, 3, 1, Some(ServiceKind::StatusPoller)),
            (2, 4, 0, Some(ServiceKind::Forwarder)),
        ] {
            let r = round(replicas, n);
            assert_eq!(victim(&r), replica, "replicas {replicas} round {n}");
            assert_eq!(pair(&r), service, "replicas {replicas} round {n}");
        }
    }

    #[test]
    fn no_component_is_hit_twice_in_a_row() {
        let component = |f: &InfraFault| match f {
            InfraFault::Kill { service, .. } | InfraFault::KillPair { service } => {
                service.to_string()
            }
            InfraFault::BrokerStopStart
            | InfraFault::BrokerCloseConnections
            | InfraFault::BrokerNodeKill => "broker".into(),
            InfraFault::PostgresRestart => "postgres".into(),
        };
        // Within a round and across the boundary to the next one.
        for (replicas, broker_nodes) in [(1, 1), (2, 1), (1, 3), (2, 3)] {
            let plan = Plan::Rounds {
                replicas,
                broker_nodes,
            };
            let round = |n| plan.round(n).expect("rounds go on").infra;
            for n in 0..4 {
                let mut seq = round(n);
                seq.push(round(n + 1)[0].clone());
                for w in seq.windows(2) {
                    assert_ne!(component(&w[0]), component(&w[1]), "round {n}: {w:?}");
                }
            }
        }
    }

    #[test]
    fn a_cluster_loses_its_leading_node_instead_of_stopping_the_app() {
        for replicas in [1, 2] {
            let single = round(replicas, 0).infra;
            let cluster = cluster_round(replicas, 0).infra;
            assert_eq!(single.len(), cluster.len());
            assert!(!cluster.contains(&InfraFault::BrokerStopStart));
            assert_eq!(
                cluster
                    .iter()
                    .filter(|f| **f == InfraFault::BrokerNodeKill)
                    .count(),
                1
            );
            assert!(!single.contains(&InfraFault::BrokerNodeKill));
            let plan = |broker_nodes| Plan::Rounds {
                replicas,
                broker_nodes,
            };
            assert_eq!(plan(1).round(0).unwrap().infra, single);
            assert_eq!(plan(3).round(0).unwrap().infra, cluster);
        }
    }

    #[test]
    fn a_once_plan_runs_its_faults_one_time_without_windows() {
        let faults = vec![InfraFault::BrokerNodeKill];
        let plan = Plan::Once(faults.clone());
        let first = plan.round(0).expect("round 0");
        assert_eq!(first.infra, faults);
        assert!(first.windows.is_empty());
        assert!(plan.round(1).is_none());
    }

    #[test]
    fn behaviours_match_the_faults() {
        let hang = Duration::from_secs(6);
        for (fault, behaviour) in [
            (TargetFault::Http500, Behaviour::Always(500)),
            (TargetFault::RetryAfter, Behaviour::RetryAfter(1)),
            (TargetFault::Hang, Behaviour::Hang(hang)),
            (TargetFault::CloseInHead, Behaviour::CloseInHead),
            (TargetFault::CloseInBody, Behaviour::CloseInBody),
            (TargetFault::Garbage, Behaviour::Garbage),
        ] {
            assert_eq!(fault.behaviour(hang), behaviour);
        }
    }
}
