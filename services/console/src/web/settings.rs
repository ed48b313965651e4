//! What the console's pages need beyond the API's state: where RabbitMQ's
//! management API is, and where each service's ops endpoint is (for the
//! overview's readiness and replica counts).

use super::broker::ManagementApi;

#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// `None`: the overview says the queues cannot be read.
    pub management: Option<ManagementApi>,
    /// (service, base URL of its `/readyz`) — a service listed twice has
    /// two replicas.
    pub services: Vec<(String, String)>,
    /// For the management API and readiness probes (operator-configured
    /// addresses, not tenants': no egress policy applies).
    pub http: reqwest::Client,
    /// `TRACE_URL`: a trace viewer's page for a trace, `{trace_id}` in it
    /// replaced; `None` shows the id only.
    pub trace_url: Option<String>,
}

/// Parses `SERVICE_URLS`: `name=url` pairs separated by commas.
pub fn parse_service_urls(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, url) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not name=url"))?;
            let (name, url) = (name.trim(), url.trim().trim_end_matches('/'));
            if name.is_empty() {
                return Err(format!("`{pair}` has no service name"));
            }
            url::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
            Ok((name.to_string(), url.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls() {
        assert_eq!(
            parse_service_urls(
                "ingest=http://a:8080/, forwarder=http://b:9090,forwarder=http://c:9090"
            )
            .unwrap(),
            vec![
                ("ingest".to_string(), "http://a:8080".to_string()),
                ("forwarder".to_string(), "http://b:9090".to_string()),
                ("forwarder".to_string(), "http://c:9090".to_string()),
            ]
        );
        assert_eq!(parse_service_urls("").unwrap(), vec![]);
        assert!(parse_service_urls("ingest").is_err());
        assert!(parse_service_urls("=http://a").is_err());
        assert!(parse_service_urls("x=not a url").is_err());
    }
}
