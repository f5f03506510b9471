//! Where Redis is: one server, a Sentinel-managed master, or a Cluster; parsed from the
//! `redis+sentinel://` and `redis+cluster://` URL forms (or the `REDIS_SENTINELS` /
//! `REDIS_CLUSTER_NODES` lists), described without credentials, and checked against the key
//! prefix (a cluster needs a hash tag so that every key of ours lives in one slot).

use crate::error::{Result, StoreError};

/// Default ports when a host is given without one.
pub const SENTINEL_PORT: u16 = 26379;
pub const REDIS_PORT: u16 = 6379;
/// The master name when none is given (Sentinel's own example name).
pub const DEFAULT_MASTER: &str = "mymaster";

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Topology {
    /// One server (`redis://` / `rediss://`), or host/port settings.
    #[default]
    Single,
    /// A master found through Sentinels; the data-node credentials are the settings' own.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        /// Credentials of the Sentinels themselves (often none, or different from the data nodes').
        sentinel_username: Option<String>,
        sentinel_password: Option<String>,
    },
    /// A Redis Cluster, given by any of its nodes (the client learns the rest).
    Cluster { nodes: Vec<(String, u16)> },
}

impl Topology {
    pub fn is_single(&self) -> bool {
        matches!(self, Self::Single)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Sentinel { .. } => "sentinel",
            Self::Cluster { .. } => "cluster",
        }
    }
}

/// A parsed `redis[s]+sentinel://` or `redis[s]+cluster://` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct MultiUrl {
    pub topology: Topology,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

/// True when `url` uses one of the multi-node schemes (so [`parse_multi_url`] applies).
pub fn is_multi_url(url: &str) -> bool {
    let scheme = url.trim().split("://").next().unwrap_or("").to_ascii_lowercase();
    matches!(scheme.as_str(), "redis+sentinel" | "rediss+sentinel" | "redis+cluster" | "rediss+cluster")
}

/// Parses `redis[s]+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db][?sentinelPassword=...]`
/// or `redis[s]+cluster://[[user]:password@]host[:port][,host[:port]...]`. Errors never echo the value.
pub fn parse_multi_url(url: &str) -> Result<MultiUrl> {
    let bad = |why: &str| StoreError::Invalid(format!("Redis URL (not shown): {why}"));
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    let tls = scheme.starts_with("rediss");
    let sentinel = scheme.ends_with("+sentinel");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let default_port = if sentinel { SENTINEL_PORT } else { REDIS_PORT };
    let nodes = parse_hosts(hosts, default_port).map_err(|why| bad(&why))?;
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
            let user = Some(decode(user).map_err(|w| bad(&w))?).filter(|s| !s.is_empty());
            let pass = pass.map(decode).transpose().map_err(|w| bad(&w))?.filter(|s| !s.is_empty());
            (user, pass)
        }
    };
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let mut db = 0;
    let topology = if sentinel {
        let master = segments.next().map(decode).transpose().map_err(|w| bad(&w))?;
        if let Some(d) = segments.next() {
            db = parse_db(d).ok_or_else(|| bad("the database after the master name is not 0-15"))?;
        }
        let (mut s_user, mut s_pass) = (None, None);
        for (k, v) in query.into_iter().flat_map(|q| q.split('&')).filter_map(|kv| kv.split_once('=')) {
            let v = Some(decode(v).map_err(|w| bad(&w))?).filter(|s| !s.is_empty());
            match k {
                "sentinelPassword" | "sentinel_password" => s_pass = v,
                "sentinelUsername" | "sentinel_username" => s_user = v,
                _ => return Err(bad("unknown query parameter (sentinelPassword and sentinelUsername are known)")),
            }
        }
        Topology::Sentinel {
            sentinels: nodes,
            master: master.unwrap_or_else(|| DEFAULT_MASTER.to_string()),
            sentinel_username: s_user,
            sentinel_password: s_pass,
        }
    } else {
        if segments.next().is_some() {
            return Err(bad("a cluster URL has no path: a cluster has only database 0"));
        }
        if query.is_some() {
            return Err(bad("a cluster URL takes no query parameters"));
        }
        Topology::Cluster { nodes }
    };
    if segments.next().is_some() {
        return Err(bad("too many path segments"));
    }
    Ok(MultiUrl { topology, tls, username, password, db })
}

/// `host[:port],host[:port]...` (IPv6 in brackets).
pub fn parse_hosts(list: &str, default_port: u16) -> std::result::Result<Vec<(String, u16)>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, port) = match item.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or("an IPv6 address without ']'")?;
                (h, after.strip_prefix(':'))
            }
            None => match item.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (item, None),
            },
        };
        let ok = |c: char| c.is_ascii_alphanumeric() || "-._:".contains(c);
        if host.is_empty() || !host.chars().all(ok) {
            return Err("a host is empty or has characters a host name cannot have".into());
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or("a port is not a number 1-65535")?,
            None => default_port,
        };
        out.push((host.to_string(), port));
    }
    if out.is_empty() {
        return Err("no host given".into());
    }
    Ok(out)
}

fn parse_db(s: &str) -> Option<i64> {
    s.parse().ok().filter(|n| (0..=15).contains(n))
}

/// Percent-decoding of one URL component.
fn decode(s: &str) -> std::result::Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "a credential is not UTF-8 after percent-decoding".to_string())
}

/// `host:port,host:port` for logs and status (never credentials).
pub fn describe_hosts(nodes: &[(String, u16)]) -> String {
    nodes
        .iter()
        .map(|(h, p)| if h.contains(':') { format!("[{h}]:{p}") } else { format!("{h}:{p}") })
        .collect::<Vec<_>>()
        .join(",")
}

/// The hash tag of a key prefix, as Redis Cluster computes a key's slot: the text between the
/// first `{` and the next `}`, when not empty. The whole tag must lie inside the prefix, or keys
/// could end up in different slots.
pub fn hash_tag(prefix: &str) -> Option<&str> {
    let open = prefix.find('{')?;
    let close = prefix[open + 1..].find('}')? + open + 1;
    (close > open + 1).then(|| &prefix[open + 1..close])
}

/// Refuses a cluster prefix that would spread our keys over several slots.
pub fn check_cluster_prefix(prefix: &str) -> Result<()> {
    if hash_tag(prefix).is_some() {
        return Ok(());
    }
    let suggestion = format!("{{{}}}:", prefix.trim_end_matches(':').replace(['{', '}'], ""));
    Err(StoreError::Invalid(format!(
        "REDIS_KEY_PREFIX {prefix:?} has no hash tag: in a Redis Cluster every poolgate key must live in one slot \
         so that the multi-key scripts work; use a prefix with a hash tag, e.g. {suggestion:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sentinel_urls() {
        let u = parse_multi_url("redis+sentinel://:data%40pw@s1:26380,s2,[::1]:26381/prod/3?sentinelPassword=s%20pw")
            .expect("ok");
        assert_eq!(u.password.as_deref(), Some("data@pw"));
        assert_eq!(u.db, 3);
        assert!(!u.tls);
        assert_eq!(
            u.topology,
            Topology::Sentinel {
                sentinels: vec![("s1".into(), 26380), ("s2".into(), 26379), ("::1".into(), 26381)],
                master: "prod".into(),
                sentinel_username: None,
                sentinel_password: Some("s pw".into()),
            }
        );
        let u = parse_multi_url("rediss+sentinel://user:pw@h").expect("ok");
        assert!(u.tls);
        assert_eq!(u.username.as_deref(), Some("user"));
        assert!(matches!(u.topology, Topology::Sentinel { ref master, .. } if master == DEFAULT_MASTER));
    }

    #[test]
    fn cluster_urls() {
        let u = parse_multi_url("redis+cluster://:pw@n1:7000,n2:7001").expect("ok");
        assert_eq!(u.topology, Topology::Cluster { nodes: vec![("n1".into(), 7000), ("n2".into(), 7001)] });
        assert_eq!(u.password.as_deref(), Some("pw"));
        for bad in ["redis+cluster://n1:7000/2", "redis+cluster://", "redis+cluster://n1:99999", "redis+cluster://n 1"]
        {
            assert!(parse_multi_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_never_show_the_value() {
        for bad in [
            "redis+sentinel://:SECRETPW@h/m/99",
            "redis+sentinel://:SECRETPW@h/m?sentinelPassword=SECRETPW&x=1",
            "redis+cluster://:SECRETPW@/x",
            "redis+sentinel://:SECRETPW@h:port/m",
            "redis+sentinel://:SECRET%FFPW@h/m",
        ] {
            let e = parse_multi_url(bad).expect_err(bad).to_string();
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn hash_tags_as_redis_computes_them() {
        assert_eq!(hash_tag("{aiclient}:"), Some("aiclient"));
        assert_eq!(hash_tag("poolgate:{prod}:"), Some("prod"));
        assert_eq!(hash_tag("aiclient:"), None);
        assert_eq!(hash_tag("{}aiclient:"), None, "an empty tag hashes the whole key");
        assert_eq!(hash_tag("{aiclient:"), None, "a tag the prefix does not close");
        assert!(check_cluster_prefix("{aiclient}:").is_ok());
        let e = check_cluster_prefix("aiclient:").expect_err("refused").to_string();
        assert!(e.contains("{aiclient}:"), "{e}");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".{0,80}") {
            let _ = parse_multi_url(&format!("redis+sentinel://{s}"));
            let _ = parse_multi_url(&format!("rediss+cluster://{s}"));
            let _ = hash_tag(&s);
        }
    }
}
