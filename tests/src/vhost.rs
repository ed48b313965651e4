//! `TestVhost`: a uniquely named vhost on the shared RabbitMQ, created through
//! the management API (`MANAGEMENT_URL`, default http://127.0.0.1:15672,
//! guest/guest unless `MANAGEMENT_USER`/`MANAGEMENT_PASSWORD`), with full
//! permissions for the user, deleted on `cleanup()` or drop. Queues, exchanges
//! and messages of a test live and die with its vhost.

use crate::temp::unique_suffix;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_MANAGEMENT_URL: &str = "http://127.0.0.1:15672";

/// Where and as whom the management API is reached.
#[derive(Clone, Debug)]
pub struct Management {
    pub url: String,
    pub user: String,
    pub password: String,
}

impl Management {
    pub fn from_env() -> Self {
        Self {
            url: std::env::var("MANAGEMENT_URL")
                .unwrap_or_else(|_| DEFAULT_MANAGEMENT_URL.into())
                .trim_end_matches('/')
                .to_string(),
            user: std::env::var("MANAGEMENT_USER").unwrap_or_else(|_| "guest".into()),
            password: std::env::var("MANAGEMENT_PASSWORD").unwrap_or_else(|_| "guest".into()),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let client = reqwest::Client::new();
        let mut req = client
            .request(method.clone(), format!("{}{path}", self.url))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if !status.is_success() && status != reqwest::StatusCode::NOT_FOUND {
            let text = resp.text().await.unwrap_or_default();
            anyhow::bail!("management API {method} {path}: {status} {text}");
        }
        Ok(resp)
    }
}

impl Management {
    /// `GET path` as JSON (an error for any non-2xx answer).
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let resp = self.call(reqwest::Method::GET, path, None).await?;
        anyhow::ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
        Ok(resp.json().await?)
    }

    /// `POST path` with a JSON body (an error for any non-2xx answer).
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let resp = self.call(reqwest::Method::POST, path, Some(body)).await?;
        anyhow::ensure!(resp.status().is_success(), "POST {path}: {}", resp.status());
        Ok(())
    }
}

pub struct TestVhost {
    name: String,
    amqp_url: String,
    management: Management,
    deleted: bool,
}

impl TestVhost {
    /// Creates `sstest-<random>` and grants the management user every permission.
    pub async fn create() -> anyhow::Result<Self> {
        let management = Management::from_env();
        let name = format!("sstest-{}", unique_suffix());
        let enc = encode_path_segment(&name);
        management
            .call(reqwest::Method::PUT, &format!("/api/vhosts/{enc}"), None)
            .await?;
        let base = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
        let user = amqp_user(&base).unwrap_or_else(|| management.user.clone());
        let vhost = Self {
            amqp_url: with_vhost(&base, &name),
            name,
            management,
            deleted: false,
        };
        vhost
            .management
            .call(
                reqwest::Method::PUT,
                &format!("/api/permissions/{enc}/{}", encode_path_segment(&user)),
                Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
            )
            .await?;
        Ok(vhost)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The AMQP URL services get as `AMQP_URL` (vhost URL-encoded).
    pub fn amqp_url(&self) -> &str {
        &self.amqp_url
    }

    pub fn management(&self) -> &Management {
        &self.management
    }

    /// Closes every client connection of this vhost, as an operator's
    /// `close_all_connections` or a broker restart would (through the local
    /// `rabbitmqctl`: the shared broker runs on this machine).
    pub async fn close_connections(&self) -> anyhow::Result<()> {
        rabbitmqctl(&["close_all_connections", "--vhost", &self.name, "test"]).await?;
        Ok(())
    }

    /// The client properties of this vhost's open connections, one line
    /// each (the client's connection name among them). `rabbitmqctl` sees a
    /// connection at once; the management API only at its next statistics.
    pub async fn connections(&self) -> anyhow::Result<Vec<String>> {
        let out = rabbitmqctl(&["list_connections", "-q", "vhost", "client_properties"]).await?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(vhost, _)| *vhost == self.name)
            .map(|(_, props)| props.to_string())
            .collect())
    }

    /// Deletes the vhost now (also done on drop).
    pub async fn cleanup(mut self) -> anyhow::Result<()> {
        self.deleted = true;
        delete_vhost(&self.management, &self.name).await
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let management = self.management.clone();
        let name = self.name.clone();
        let done =
            crate::temp::cleanup_blocking(
                move || async move { delete_vhost(&management, &name).await },
            );
        if let Err(e) = done {
            eprintln!("salesync-e2e: could not delete vhost {}: {e}", self.name);
        }
    }
}

async fn rabbitmqctl(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("rabbitmqctl: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn delete_vhost(management: &Management, name: &str) -> anyhow::Result<()> {
    management
        .call(
            reqwest::Method::DELETE,
            &format!("/api/vhosts/{}", encode_path_segment(name)),
            None,
        )
        .await?;
    Ok(())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a vhost
/// name is one URL path segment (`/` becomes `%2F`).
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` (an AMQP URL) pointing at vhost `name` instead of its own.
pub fn with_vhost(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], encode_path_segment(name));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The user name in an AMQP URL's userinfo, if any.
pub fn amqp_user(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let user = userinfo.split(':').next()?;
    (!user.is_empty()).then(|| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        for (raw, want) in [
            ("sstest-abc", "sstest-abc"),
            ("/", "%2F"),
            ("a b/c", "a%20b%2Fc"),
            ("x.y_z~", "x.y_z~"),
        ] {
            assert_eq!(encode_path_segment(raw), want);
        }
    }

    #[test]
    fn points_urls_at_a_vhost() {
        for (url, want) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://guest:guest@127.0.0.1:5672/sstest-1",
            ),
            (
                "amqp://guest:guest@127.0.0.1:5672",
                "amqp://guest:guest@127.0.0.1:5672/sstest-1",
            ),
            (
                "amqp://u:p@h:5672/v?heartbeat=10",
                "amqp://u:p@h:5672/sstest-1?heartbeat=10",
            ),
        ] {
            assert_eq!(with_vhost(url, "sstest-1"), want, "{url}");
        }
        assert_eq!(with_vhost("amqp://h/", "a/b"), "amqp://h/a%2Fb");
    }

    #[test]
    fn finds_the_user_in_amqp_urls() {
        assert_eq!(
            amqp_user("amqp://guest:guest@127.0.0.1:5672/%2f").as_deref(),
            Some("guest")
        );
        assert_eq!(amqp_user("amqp://bob@h/v").as_deref(), Some("bob"));
        assert_eq!(amqp_user("amqp://h:5672/v"), None);
    }
}
