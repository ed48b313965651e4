//! Outgoing HTTP on a tenant's behalf, and the addresses it never reaches.
//!
//! A tenant chooses the URLs salesync calls (integration targets, status
//! URLs, its webhook). Without a guard, a tenant could point one at our own
//! network — the broker's management API on loopback, a database on a private
//! address, cloud metadata on 169.254.169.254 — and read the answers in its
//! attempt log (SSRF). So every such URL is checked twice:
//!
//! - when it is configured ([`EgressPolicy::check_configured_url`]): an IP
//!   literal, or any address its name resolves to now, in a forbidden class
//!   is refused with the reason;
//! - when a request is sent ([`EgressClient`]): IP literals are checked
//!   before the request exists, and names go through [`GuardedResolver`],
//!   which resolves them and hands the connector only addresses that pass —
//!   so a name that resolved to a public address when configured and to a
//!   private one now (DNS rebinding) still reaches nothing private.
//!   Redirects are not followed and no proxy is used, so neither can lead
//!   the request past the check.
//!
//! An operator allow-list (`TARGET_ALLOW_NETS`) opens chosen networks for
//! on-premise installs, tests and the demo. By default nothing private is.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long the check of a configured URL waits for DNS. A name that does
/// not resolve in time is accepted: the connect-time check still applies.
const CONFIGURE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the outgoing-request guard (ingest, forwarder, status-poller).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EgressArgs {
    /// Networks salesync may call although they are loopback, private,
    /// link-local, CGNAT or otherwise not public, comma-separated CIDRs
    /// (`127.0.0.0/8,10.1.0.0/16`). Empty: only public addresses.
    #[arg(long, env = "TARGET_ALLOW_NETS", default_value = "", value_parser = parse_allow_nets)]
    pub target_allow_nets: AllowNets,
}

impl EgressArgs {
    pub fn policy(&self) -> EgressPolicy {
        EgressPolicy::new(self.target_allow_nets.clone())
    }
}

/// The operator's allow-list: networks callable despite their class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowNets(Vec<IpNet>);

impl AllowNets {
    fn contains(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4)))
    }
}

/// The target a URL belongs to: scheme, host and port (the default port when
/// none is written). An unparsable URL is its own target; its request fails
/// before anything is sent.
pub fn target_key(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Parses `TARGET_ALLOW_NETS`: comma-separated CIDRs; a bare address is a
/// network of one.
pub fn parse_allow_nets(s: &str) -> Result<AllowNets, String> {
    let mut nets = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net = IpNet::from_str(part)
            .or_else(|_| IpAddr::from_str(part).map(IpNet::from))
            .map_err(|_| {
                format!("'{part}' is not a network (CIDR like 10.1.0.0/16) or an address")
            })?;
        nets.push(net.trunc());
    }
    Ok(AllowNets(nets))
}

/// A class of address salesync does not call on a tenant's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    Loopback,
    /// RFC 1918 (and deprecated IPv6 site-local).
    Private,
    /// IPv6 unique local, fc00::/7.
    UniqueLocal,
    LinkLocal,
    /// 100.64.0.0/10, RFC 6598 (carrier-grade NAT).
    SharedAddressSpace,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    /// IETF protocol assignments, benchmarking, 240/4, IPv6 discard.
    Reserved,
}

impl Forbidden {
    pub fn describe(self) -> &'static str {
        match self {
            Forbidden::Loopback => "loopback",
            Forbidden::Private => "private",
            Forbidden::UniqueLocal => "unique local",
            Forbidden::LinkLocal => "link-local",
            Forbidden::SharedAddressSpace => "shared (CGNAT)",
            Forbidden::Unspecified => "unspecified",
            Forbidden::Multicast => "multicast",
            Forbidden::Broadcast => "broadcast",
            Forbidden::Documentation => "documentation",
            Forbidden::Reserved => "reserved",
        }
    }
}

/// The class that makes `ip` forbidden, or `None` for a public address.
pub fn forbidden_class(ip: IpAddr) -> Option<Forbidden> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<Forbidden> {
    let o = ip.octets();
    Some(if o[0] == 0 {
        // 0.0.0.0/8, "this network"; connecting to 0.0.0.0 reaches loopback.
        Forbidden::Unspecified
    } else if ip.is_loopback() {
        Forbidden::Loopback
    } else if ip.is_private() {
        Forbidden::Private
    } else if ip.is_link_local() {
        Forbidden::LinkLocal
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Forbidden::SharedAddressSpace
    } else if ip.is_broadcast() {
        Forbidden::Broadcast
    } else if ip.is_multicast() {
        Forbidden::Multicast
    } else if ip.is_documentation() {
        Forbidden::Documentation
    } else if o[0] >= 240 || (o[0], o[1], o[2]) == (192, 0, 0) || (o[0] == 198 && o[1] & 0xfe == 18)
    {
        Forbidden::Reserved
    } else {
        return None;
    })
}

fn v6_class(ip: Ipv6Addr) -> Option<Forbidden> {
    if ip.is_unspecified() {
        return Some(Forbidden::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Forbidden::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return v4_class(v4);
    }
    let s = ip.segments();
    Some(if s[0] & 0xfe00 == 0xfc00 {
        Forbidden::UniqueLocal
    } else if s[0] & 0xffc0 == 0xfe80 {
        Forbidden::LinkLocal
    } else if s[0] & 0xffc0 == 0xfec0 {
        Forbidden::Private
    } else if s[0] & 0xff00 == 0xff00 {
        Forbidden::Multicast
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Forbidden::Documentation
    } else if s[..4] == [0x0100, 0, 0, 0] {
        Forbidden::Reserved
    } else {
        return None;
    })
}

/// The IPv4 address an IPv6 one leads to: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::/96`) and
/// 6to4 (`2002:aabb:ccdd::/48`). Each is judged by its IPv4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0; 6] || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) {
        Some(from(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(from(s[1], s[2]))
    } else {
        None
    }
}

/// A request salesync will not send, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{host} is {ip}, a {} address salesync does not call (an operator can allow it with TARGET_ALLOW_NETS)",
        class.describe()
    )]
    Address {
        host: String,
        ip: IpAddr,
        class: Forbidden,
    },
    #[error("not a URL salesync can call: {0}")]
    Url(String),
}

/// Which addresses may be called: every public one, plus the allow-list.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Arc<AllowNets>,
}

impl EgressPolicy {
    pub fn new(allow: AllowNets) -> Self {
        Self {
            allow: Arc::new(allow),
        }
    }

    /// Why `ip` (reached as `host`) may not be called, if it may not.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        match forbidden_class(ip) {
            Some(class) if !self.allow.contains(ip) => Err(Refused::Address {
                host: host.to_string(),
                ip,
                class,
            }),
            _ => Ok(()),
        }
    }

    /// The connect-time check of a URL's host when it is an IP literal
    /// (the connector resolves nothing for those, so the resolver cannot see
    /// them). Names pass here: [`GuardedResolver`] checks what they resolve to.
    pub fn check_literal(&self, url: &Url) -> Result<(), Refused> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(&ip.to_string(), IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(&ip.to_string(), IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Refused::Url("the URL has no host".into())),
        }
    }

    /// The check of a URL a tenant configures: its IP literal, or every
    /// address its name resolves to now. A name that does not resolve (yet)
    /// passes; it is checked again on every connect.
    pub async fn check_configured_url(&self, url: &str) -> Result<(), Refused> {
        let url = Url::parse(url).map_err(|e| Refused::Url(e.to_string()))?;
        self.check_literal(&url)?;
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let lookup = tokio::net::lookup_host((name, port));
        let Ok(Ok(addrs)) = tokio::time::timeout(CONFIGURE_LOOKUP_TIMEOUT, lookup).await else {
            return Ok(());
        };
        for addr in addrs {
            self.check_ip(name, addr.ip())?;
        }
        Ok(())
    }

    /// An HTTP client whose connections reach only addresses this policy
    /// allows. Wrap it in [`EgressClient`] so IP literals are checked too.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .dns_resolver(GuardedResolver {
                policy: self.clone(),
            })
            // A proxy would resolve the name itself, past the resolver.
            .no_proxy()
            // A redirect could lead anywhere; a target must answer itself.
            .redirect(reqwest::redirect::Policy::none())
    }
}

/// Resolves names with the system resolver and passes on only the addresses
/// the policy allows; when none is left the connect fails with [`Refused`].
pub struct GuardedResolver {
    policy: EgressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused) = filter_addrs(&policy, &host, found);
            match (allowed.is_empty(), refused) {
                (true, Some(refused)) => Err(Box::new(refused) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The addresses that may be called, and the first refusal among the others.
fn filter_addrs(
    policy: &EgressPolicy,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> (Vec<SocketAddr>, Option<Refused>) {
    let mut refused = None;
    let allowed = addrs
        .into_iter()
        .filter(|a| match policy.check_ip(host, a.ip()) {
            Ok(()) => true,
            Err(r) => {
                refused.get_or_insert(r);
                false
            }
        })
        .collect();
    (allowed, refused)
}

/// An HTTP client that sends only where its policy allows: the one way
/// salesync calls a URL a tenant chose.
#[derive(Clone)]
pub struct EgressClient {
    client: reqwest::Client,
    policy: EgressPolicy,
}

impl EgressClient {
    /// `builder` must come from [`EgressPolicy::client_builder`] of `policy`.
    pub fn new(policy: EgressPolicy, builder: reqwest::ClientBuilder) -> reqwest::Result<Self> {
        Ok(Self {
            client: builder.build()?,
            policy,
        })
    }

    /// A POST to `url`, or why it may not be sent.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        self.request(reqwest::Method::POST, url)
    }

    /// A request to `url`, or why it may not be sent.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        let url = Url::parse(url).map_err(|e| Refused::Url(e.to_string()))?;
        self.policy.check_literal(&url)?;
        Ok(self.client.request(method, url))
    }
}

/// The refusal somewhere in an error's chain of sources (a connect refused
/// by [`GuardedResolver`] reaches the caller wrapped by reqwest and hyper).
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r);
        }
        next = err.source();
    }
    None
}

impl fmt::Display for AllowNets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&nets.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_non_public_class_is_forbidden() {
        use Forbidden::*;
        for (addr, want) in [
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("100.64.0.1", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("192.0.2.1", Some(Documentation)),
            ("198.18.0.1", Some(Reserved)),
            ("192.0.0.8", Some(Reserved)),
            ("240.0.0.1", Some(Reserved)),
            ("::1", Some(Loopback)),
            ("::", Some(Unspecified)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(Private)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("100::1", Some(Reserved)),
            // IPv6 forms that lead to an IPv4 host are judged by it.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::10.1.2.3", Some(Private)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("2002:c0a8:0101::1", Some(Private)),
            // Public addresses.
            ("8.8.8.8", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("172.32.0.1", None),
            ("198.20.0.1", None),
            ("2606:4700::1111", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
        ] {
            assert_eq!(forbidden_class(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn the_allow_list_opens_only_its_networks() {
        let policy = EgressPolicy::new(parse_allow_nets("127.0.0.0/8, 10.1.0.0/16,::1").unwrap());
        assert!(policy.check_ip("h", ip("127.0.0.1")).is_ok());
        assert!(policy.check_ip("h", ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check_ip("h", ip("::1")).is_ok());
        assert!(policy.check_ip("h", ip("10.1.200.3")).is_ok());
        assert!(policy.check_ip("h", ip("10.2.0.1")).is_err());
        assert!(policy.check_ip("h", ip("169.254.169.254")).is_err());
        assert!(policy.check_ip("h", ip("8.8.8.8")).is_ok());
        let closed = EgressPolicy::default();
        let err = closed.check_ip("meta", ip("169.254.169.254")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "meta is 169.254.169.254, a link-local address salesync does not call \
             (an operator can allow it with TARGET_ALLOW_NETS)"
        );
    }

    #[test]
    fn allow_nets_parse() {
        assert_eq!(parse_allow_nets("").unwrap(), AllowNets::default());
        assert_eq!(
            parse_allow_nets("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            parse_allow_nets("127.0.0.1,::1").unwrap().to_string(),
            "127.0.0.1/32,::1/128"
        );
        let err = parse_allow_nets("10.0.0.0/8,intranet").unwrap_err();
        assert!(err.contains("'intranet'"), "{err}");
        assert!(parse_allow_nets("10.0.0.0/33").is_err());
    }

    #[test]
    fn literals_in_urls_are_checked_in_every_spelling() {
        let policy = EgressPolicy::default();
        for url in [
            "http://127.0.0.1:15672/api/overview",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]:8080/",
            "http://[::ffff:7f00:1]/",
            "https://169.254.169.254/latest/meta-data/",
            "http://0/",
        ] {
            let parsed = Url::parse(url).unwrap();
            assert!(
                matches!(policy.check_literal(&parsed), Err(Refused::Address { .. })),
                "{url}"
            );
        }
        for url in ["https://example.com/x", "http://8.8.8.8/"] {
            assert!(
                policy.check_literal(&Url::parse(url).unwrap()).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn the_resolver_passes_on_only_allowed_addresses() {
        let policy = EgressPolicy::default();
        let addrs: Vec<SocketAddr> = ["93.184.216.34:0", "10.0.0.5:0", "[fe80::1]:0"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let (allowed, refused) = filter_addrs(&policy, "rebind.example", addrs);
        assert_eq!(allowed, vec!["93.184.216.34:0".parse().unwrap()]);
        assert!(matches!(
            refused,
            Some(Refused::Address {
                class: Forbidden::Private,
                ..
            })
        ));
        let (allowed, refused) = filter_addrs(&policy, "x", vec!["127.0.0.1:0".parse().unwrap()]);
        assert!(allowed.is_empty());
        assert!(refused.is_some());
    }

    #[tokio::test]
    async fn a_configured_name_is_judged_by_what_it_resolves_to() {
        let closed = EgressPolicy::default();
        let err = closed
            .check_configured_url("http://localhost:8080/hook")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Refused::Address {
                    class: Forbidden::Loopback,
                    ..
                }
            ),
            "{err}"
        );
        let open = EgressPolicy::new(parse_allow_nets("127.0.0.0/8,::1").unwrap());
        open.check_configured_url("http://localhost:8080/hook")
            .await
            .unwrap();
        // A name that does not resolve now is checked on every connect instead.
        closed
            .check_configured_url("http://does-not-exist.invalid/")
            .await
            .unwrap();
    }
}
