//! Which webhook targets may be contacted.
//!
//! Owns: the address policy (loopback, private, shared/CGNAT, link-local,
//! unspecified, multicast, broadcast/reserved, documentation and unique-local
//! addresses, also inside IPv4-mapped IPv6, are refused unless the server
//! runs with `--webhook-allow-private`), the check of a URL when a webhook is
//! created, and `GuardedResolver`, the resolver deliveries connect through:
//! it drops refused addresses at every connection, so a name that resolves
//! to a private address later (DNS rebinding) is not contacted either.
//! Knows nothing of HTTP routes or the feed.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use url::{Host, Url};

/// How long a name may take to resolve when a webhook is created.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `ip` may not be a webhook target, or `None` when it may.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: [([u8; 4], u32, &str); 14] = [
        ([0, 0, 0, 0], 8, "unspecified (\"this network\")"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (carrier-grade NAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved or broadcast"),
    ];
    RANGES
        .iter()
        .find(|(net, bits, _)| in_v4(ip, *net, *bits))
        .map(|(_, _, why)| *why)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], bits: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4 carried inside IPv6 is judged as that IPv4 address:
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), 64:ff9b::a.b.c.d
    // (NAT64) and 2002:aabb:ccdd:: (6to4).
    let bits = u128::from(ip);
    let embedded = if ip.to_ipv4_mapped().is_some()
        || in_v6(ip, [0; 8], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        Some(Ipv4Addr::from((bits & 0xffff_ffff) as u32))
    } else if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return refusal_v4(v4);
    }
    const RANGES: [([u16; 8], u32, &str); 5] = [
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (private)"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
    ];
    RANGES
        .iter()
        .find(|(net, bits, _)| in_v6(ip, *net, *bits))
        .map(|(_, _, why)| *why)
}

/// `localhost` and its subdomains always mean this machine (RFC 6761).
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn refused_message(host: &str, ip: Option<IpAddr>, why: &str) -> String {
    let what = match ip {
        Some(ip) if ip.to_string() != host.trim_matches(['[', ']']) => {
            format!("{host} resolves to {ip}, a {why} address")
        }
        _ => format!("{host} is a {why} address"),
    };
    format!(
        "{what}; webhooks may not target loopback, private or link-local networks \
         (the server allows them only with --webhook-allow-private)"
    )
}

/// Why the host of `url`, when it is an IP address, may not be contacted.
/// Names are judged when they resolve (`check_url`, `GuardedResolver`).
pub fn literal_refusal(url: &Url) -> Option<String> {
    let (ip, host) = match url.host()? {
        Host::Ipv4(ip) => (IpAddr::V4(ip), url.host_str()?),
        Host::Ipv6(ip) => (IpAddr::V6(ip), url.host_str()?),
        Host::Domain(name) => {
            return is_localhost_name(name).then(|| refused_message(name, None, "loopback"));
        }
    };
    refusal(ip).map(|why| refused_message(host, Some(ip), why))
}

/// Checks a new webhook's target: its host must not be, nor resolve to, a
/// refused address (unless `allow_private`). A name that does not resolve
/// now is accepted: deliveries check every address they connect to.
pub async fn check_url(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    if let Some(refused) = literal_refusal(url) {
        return Err(refused);
    }
    let (Some(Host::Domain(name)), Some(port)) = (url.host(), url.port_or_known_default()) else {
        return Ok(());
    };
    let lookup = tokio::net::lookup_host((name, port));
    let Ok(Ok(addrs)) = tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await else {
        return Ok(());
    };
    for addr in addrs {
        if let Some(why) = refusal(addr.ip()) {
            return Err(refused_message(name, Some(addr.ip()), why));
        }
    }
    Ok(())
}

/// A connection attempt the policy stopped.
#[derive(Debug, thiserror::Error)]
#[error("address refused: {0}")]
pub struct AddressRefused(pub String);

/// The resolver deliveries connect through: resolves with the system
/// resolver and drops the addresses the policy refuses; when none is left
/// the attempt fails with "address refused".
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl GuardedResolver {
    /// The addresses of `host` that may be contacted.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, Box<dyn StdError>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return match refusal(ip).filter(|_| !self.allow_private) {
                Some(why) => Err(Box::new(AddressRefused(refused_message(
                    host,
                    Some(ip),
                    why,
                )))),
                None => Ok(vec![SocketAddr::new(ip, port)]),
            };
        }
        if !self.allow_private && is_localhost_name(bare) {
            return Err(Box::new(AddressRefused(refused_message(
                bare, None, "loopback",
            ))));
        }
        let all: Vec<SocketAddr> = tokio::net::lookup_host((bare, port)).await?.collect();
        if self.allow_private {
            return Ok(all);
        }
        let mut first_refused = None;
        let kept: Vec<SocketAddr> = all
            .into_iter()
            .filter(|a| match refusal(a.ip()) {
                Some(why) => {
                    first_refused.get_or_insert((a.ip(), why));
                    false
                }
                None => true,
            })
            .collect();
        match (kept.is_empty(), first_refused) {
            (true, Some((ip, why))) => Err(Box::new(AddressRefused(refused_message(
                bare,
                Some(ip),
                why,
            )))),
            _ => Ok(kept),
        }
    }
}

impl actix_tls::connect::Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        Box::pin(self.resolve(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refused_and_allowed_addresses() {
        for refused in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.10",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
            "2001:db8::1",
        ] {
            assert!(refusal(ip(refused)).is_some(), "{refused} must be refused");
        }
        for allowed in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(refusal(ip(allowed)), None, "{allowed} must be allowed");
        }
    }

    #[test]
    fn literal_hosts_and_localhost_names_are_judged_without_resolving() {
        for refused in [
            "http://127.0.0.1:9/x",
            "http://[::1]/",
            "http://[::ffff:192.168.0.1]/",
            "http://localhost:9/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "https://10.0.0.1/",
        ] {
            let url = Url::parse(refused).unwrap();
            let why = literal_refusal(&url).unwrap_or_else(|| panic!("{refused}"));
            assert!(why.contains("--webhook-allow-private"), "{why}");
        }
        for allowed in [
            "https://example.com/hook",
            "http://8.8.8.8/",
            "http://[2606:4700::1]/",
        ] {
            assert_eq!(
                literal_refusal(&Url::parse(allowed).unwrap()),
                None,
                "{allowed}"
            );
        }
    }

    #[actix_rt::test]
    async fn the_resolver_drops_refused_addresses() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        for host in ["127.0.0.1", "[::1]", "localhost", "10.1.1.1"] {
            let e = guarded.resolve(host, 80).await.unwrap_err();
            assert!(e.to_string().starts_with("address refused"), "{host}: {e}");
        }
        assert_eq!(
            guarded.resolve("8.8.8.8", 443).await.unwrap(),
            vec!["8.8.8.8:443".parse().unwrap()]
        );
        let open = GuardedResolver {
            allow_private: true,
        };
        assert_eq!(
            open.resolve("127.0.0.1", 80).await.unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
        let local = open.resolve("localhost", 80).await.unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
    }

    #[actix_rt::test]
    async fn creation_checks_literal_and_local_targets() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost:9/",
            "http://[::1]/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(check_url(&url, false).await.is_err(), "{url}");
            assert!(check_url(&url, true).await.is_ok(), "{url}");
        }
    }
}
