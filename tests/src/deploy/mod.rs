//! The deployment files under `deploy/` (issue 18, "Deployment beyond one
//! machine") as data the tests can check: RabbitMQ definitions compared
//! with what a broker reports, the compose file's and the Kubernetes
//! manifests' wiring (env names the binaries really take, ports, probes,
//! scrape targets, referenced files), and the offline validators
//! deploy/setup.sh installs into `.venv-deploy`.

pub mod binaries;
pub mod compose;
pub mod definitions;
pub mod k8s;
pub mod tools;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `deploy/<rel>` in the repository.
pub fn deploy_path(rel: &str) -> PathBuf {
    workspace().join("deploy").join(rel)
}

/// The port of a `host:port` address (`0.0.0.0:9090`, `ingest:8080`).
pub fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// The `host:port` of each node in a URL or comma-separated list of URLs
/// (`AMQP_URL` lists the cluster's nodes), default ports filled in by scheme.
pub fn url_endpoints(urls: &str) -> Vec<(String, u16)> {
    urls.split(',')
        .filter_map(|u| {
            let (scheme, rest) = u.trim().split_once("://")?;
            let authority = rest.split(['/', '?']).next()?;
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let (host, port) = match host_port.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (host_port.to_string(), default_port(scheme)?),
            };
            Some((host, port))
        })
        .collect()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" | "postgresql" => Some(5432),
        "amqp" => Some(5672),
        "amqps" => Some(5671),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_urls_and_lists() {
        assert_eq!(
            url_endpoints("amqp://u:p@mq-1:5672/%2f,amqp://u:p@mq-2/%2f"),
            vec![("mq-1".into(), 5672), ("mq-2".into(), 5672)]
        );
        assert_eq!(
            url_endpoints("postgres://salesync:${PW}@postgres/salesync?sslmode=disable"),
            vec![("postgres".into(), 5432)]
        );
        assert_eq!(
            url_endpoints("http://otel-collector:4318"),
            vec![("otel-collector".into(), 4318)]
        );
        assert_eq!(port_of("0.0.0.0:9090"), Some(9090));
    }
}
