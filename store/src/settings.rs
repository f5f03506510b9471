//! Redis connection settings: environment over the config file's `redis` block over defaults,
//! parsed in this one place.

use std::time::Duration;

use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::keys::DEFAULT_PREFIX;
use crate::topology::{self, Topology};

/// Default bound of the degraded-mode write queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;
/// Default bound of one `WAIT` for replica acknowledgement.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_millis(500);

/// Everything needed to reach Redis. `Debug` redacts the password.
#[derive(Clone, PartialEq)]
pub struct RedisSettings {
    pub enabled: bool,
    pub url: Option<String>,
    pub host: String,
    pub port: u16,
    pub password: Option<String>,
    /// ACL user of the data nodes (Sentinel and Cluster forms; a `redis://` URL carries its own).
    pub username: Option<String>,
    pub db: i64,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub queue_capacity: usize,
    /// One server, a Sentinel-managed master or a Cluster.
    pub topology: Topology,
    /// TLS to the data nodes (and Sentinels) of the Sentinel and Cluster forms.
    pub tls: bool,
    /// Replicas that must hold a write before it counts as done (`WAIT`); `None` = automatic:
    /// 1 when the master has replicas, 0 for a lone server.
    pub min_replicas_ack: Option<u32>,
    /// How long one `WAIT` may block; a write not acknowledged in time stays queued.
    pub wait_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            host: "localhost".into(),
            port: 6379,
            password: None,
            username: None,
            db: 0,
            key_prefix: DEFAULT_PREFIX.into(),
            connect_timeout: Duration::from_millis(5000),
            command_timeout: Duration::from_millis(1000),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            topology: Topology::Single,
            tls: false,
            min_replicas_ack: None,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("enabled", &self.enabled)
            .field("url", &self.redacted_url())
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .field("topology", &self.topology.name())
            .finish_non_exhaustive()
    }
}

/// `true`/`1`/`yes`/`on` and `false`/`0`/`no`/`off`, case-insensitive; one rule everywhere.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// What [`redact_url`] shows for a value it cannot parse (the value itself is never shown).
pub const UNPARSEABLE_URL: &str = "<unparseable URL, not shown>";

/// Replaces the password (and a user-only secret) of a `redis://` URL with `***`.
///
/// Redaction does not trust the value to be well formed: it shows only what it recognised
/// (scheme, host, port, database), masks everything before the last `@` and any query, and
/// returns [`UNPARSEABLE_URL`] for a value it cannot parse, so a password in a malformed URL (or
/// a value that is not a URL at all) is never echoed.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return UNPARSEABLE_URL.to_string();
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return UNPARSEABLE_URL.to_string();
    }
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (hostpart, query) = match hostpart.split_once('?') {
        Some((h, _)) => (h, "?***"),
        None => (hostpart, ""),
    };
    let (authority, path) = hostpart.split_at(hostpart.find('/').unwrap_or(hostpart.len()));
    let plain = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    let host_ok = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(h, port)| {
            h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
                && (port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.chars().all(|c| c.is_ascii_digit())))
        }),
        None => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            plain(host) && port.chars().all(|c| c.is_ascii_digit()) && (authority.contains(':') != port.is_empty())
        }
    };
    let path_ok = path.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if !host_ok || !path_ok || (authority.is_empty() && path.is_empty()) {
        return UNPARSEABLE_URL.to_string();
    }
    let masked = match userinfo {
        None => String::new(),
        Some(u) => match u.split_once(':') {
            Some((user, _)) if plain(user) => format!("{user}:***@"),
            Some(_) => "***:***@".to_string(),
            None => "***@".to_string(),
        },
    };
    format!("{scheme}://{masked}{authority}{path}{query}")
}

impl RedisSettings {
    /// Resolves settings from the process environment and an optional config.json value.
    pub fn from_env(config: Option<&Value>) -> Result<Self> {
        Self::resolve(|k| std::env::var(k).ok(), config)
    }

    /// Same, with the environment given as a lookup (for tests).
    pub fn resolve(env: impl Fn(&str) -> Option<String>, config: Option<&Value>) -> Result<Self> {
        let mut s = Self::default();
        let file = config.and_then(|c| c.get("redis")).cloned().unwrap_or(Value::Null);
        let fstr = |k: &str| file.get(k).and_then(|v| v.as_str().map(str::to_string));
        let fnum = |k: &str| file.get(k).and_then(Value::as_u64);

        s.url = env("REDIS_URL").filter(|v| !v.is_empty()).or_else(|| fstr("url"));
        if let Some(h) = env("REDIS_HOST").or_else(|| fstr("host")) {
            s.host = h;
        }
        if let Some(p) = env("REDIS_PORT").or_else(|| fnum("port").map(|n| n.to_string())) {
            s.port = p.parse().map_err(|_| StoreError::Invalid(format!("REDIS_PORT {p:?} is not a port")))?;
        }
        s.password = env("REDIS_PASSWORD").filter(|v| !v.is_empty()).or_else(|| fstr("password"));
        if let Some(d) = env("REDIS_DB").or_else(|| fnum("db").map(|n| n.to_string())) {
            s.db = d
                .parse()
                .ok()
                .filter(|n| (0..=15).contains(n))
                .ok_or_else(|| StoreError::Invalid(format!("REDIS_DB {d:?} is not a database number 0-15")))?;
        }
        if let Some(p) = env("REDIS_KEY_PREFIX").or_else(|| fstr("keyPrefix")) {
            s.key_prefix = p;
        }
        if let Some(ms) = fnum("connectTimeout") {
            s.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = fnum("commandTimeout") {
            s.command_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = env("REDIS_QUEUE_CAPACITY").and_then(|v| v.parse().ok()) {
            s.queue_capacity = n;
        }
        s.username = env("REDIS_USERNAME").filter(|v| !v.is_empty()).or_else(|| fstr("username"));
        if let Some(v) = env("REDIS_TLS") {
            s.tls = parse_bool(&v)
                .ok_or_else(|| StoreError::Invalid(format!("REDIS_TLS {v:?} is not a boolean (true/false/1/0)")))?;
        } else if let Some(b) = file.get("tls").and_then(Value::as_bool) {
            s.tls = b;
        }
        s.resolve_topology(&env, &fstr)?;
        s.resolve_durability(&env, &file)?;
        let env_enabled = match env("REDIS_ENABLED") {
            Some(v) => Some(parse_bool(&v).ok_or_else(|| {
                StoreError::Invalid(format!("REDIS_ENABLED {v:?} is not a boolean (true/false/1/0)"))
            })?),
            None => None,
        };
        let file_enabled = file.get("enabled").and_then(Value::as_bool);
        // A URL given in the environment switches Redis on unless REDIS_ENABLED says otherwise.
        let env_located = ["REDIS_URL", "REDIS_SENTINELS", "REDIS_CLUSTER_NODES"]
            .iter()
            .any(|k| env(k).is_some_and(|v| !v.is_empty()))
            .then_some(true);
        s.enabled = env_enabled.or(env_located).or(file_enabled).unwrap_or(false);
        Ok(s)
    }

    /// Sentinel and Cluster forms: from a multi-node URL, or from the host lists.
    fn resolve_topology(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
        fstr: &impl Fn(&str) -> Option<String>,
    ) -> Result<()> {
        let get = |e: &str, f: &str| env(e).filter(|v| !v.is_empty()).or_else(|| fstr(f));
        if let Some(url) = self.url.clone().filter(|u| topology::is_multi_url(u)) {
            let m = topology::parse_multi_url(&url)?;
            self.topology = m.topology;
            self.tls = m.tls;
            self.username = m.username.or(self.username.take());
            self.password = m.password.or(self.password.take());
            self.db = m.db;
            self.url = None;
        } else if let Some(list) = get("REDIS_SENTINELS", "sentinels") {
            let sentinels = topology::parse_hosts(&list, topology::SENTINEL_PORT)
                .map_err(|why| StoreError::Invalid(format!("REDIS_SENTINELS: {why}")))?;
            self.topology = Topology::Sentinel {
                sentinels,
                master: String::new(),
                sentinel_username: None,
                sentinel_password: None,
            };
        } else if let Some(list) = get("REDIS_CLUSTER_NODES", "clusterNodes") {
            let nodes = topology::parse_hosts(&list, topology::REDIS_PORT)
                .map_err(|why| StoreError::Invalid(format!("REDIS_CLUSTER_NODES: {why}")))?;
            self.topology = Topology::Cluster { nodes };
        }
        match &mut self.topology {
            Topology::Single => {}
            Topology::Sentinel { master, sentinel_username, sentinel_password, .. } => {
                if let Some(m) = get("REDIS_SENTINEL_MASTER", "sentinelMaster") {
                    *master = m;
                } else if master.is_empty() {
                    *master = topology::DEFAULT_MASTER.to_string();
                }
                if let Some(p) = get("REDIS_SENTINEL_PASSWORD", "sentinelPassword") {
                    *sentinel_password = Some(p);
                }
                if let Some(u) = get("REDIS_SENTINEL_USERNAME", "sentinelUsername") {
                    *sentinel_username = Some(u);
                }
            }
            Topology::Cluster { .. } => {
                if self.db != 0 {
                    return Err(StoreError::Invalid("REDIS_DB: a Redis Cluster has only database 0".into()));
                }
                topology::check_cluster_prefix(&self.key_prefix)?;
            }
        }
        Ok(())
    }

    /// `REDIS_MIN_REPLICAS_ACK` (`auto` or a count) and `REDIS_WAIT_TIMEOUT_MS`.
    fn resolve_durability(&mut self, env: &impl Fn(&str) -> Option<String>, file: &Value) -> Result<()> {
        let acks = env("REDIS_MIN_REPLICAS_ACK").or_else(|| match file.get("minReplicasAck") {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        });
        if let Some(v) = acks.map(|v| v.trim().to_ascii_lowercase()).filter(|v| !v.is_empty()) {
            self.min_replicas_ack = match v.as_str() {
                "auto" => None,
                n => Some(n.parse().ok().filter(|n| *n <= 16).ok_or_else(|| {
                    StoreError::Invalid(format!("REDIS_MIN_REPLICAS_ACK {v:?} is not 'auto' or a count 0-16"))
                })?),
            };
        }
        let wait = env("REDIS_WAIT_TIMEOUT_MS").or_else(|| file.get("waitTimeout").map(|v| v.to_string()));
        if let Some(v) = wait {
            let ms: u64 = v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                StoreError::Invalid(format!("REDIS_WAIT_TIMEOUT_MS {v:?} is not a positive number of milliseconds"))
            })?;
            self.wait_timeout = Duration::from_millis(ms);
        }
        // A WAIT must answer before the command timeout gives up on the connection.
        self.wait_timeout = self.wait_timeout.min(self.command_timeout / 2);
        Ok(())
    }

    /// The URL to connect with (may contain the password: never log it, use `redacted_url`).
    /// For the Sentinel and Cluster forms: the URL of the first node (see [`Self::node_url`]).
    pub fn connection_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        self.node_url(&self.host, self.port)
    }

    /// The URL of one data node, with the settings' credentials, database and TLS.
    pub fn node_url(&self, host: &str, port: u16) -> String {
        let user = self.username.as_deref().map(encode_userinfo).unwrap_or_default();
        let auth = match &self.password {
            Some(p) => format!("{user}:{}@", encode_userinfo(p)),
            None if !user.is_empty() => format!("{user}@"),
            None => String::new(),
        };
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        format!("{scheme}://{auth}{host}:{port}/{}", self.db)
    }

    /// The URL of one Sentinel, with the Sentinels' own credentials.
    pub fn sentinel_url(&self, host: &str, port: u16) -> String {
        let (user, pass) = match &self.topology {
            Topology::Sentinel { sentinel_username, sentinel_password, .. } => (sentinel_username, sentinel_password),
            _ => (&None, &None),
        };
        let user = user.as_deref().map(encode_userinfo).unwrap_or_default();
        let auth = match pass {
            Some(p) => format!("{user}:{}@", encode_userinfo(p)),
            None if !user.is_empty() => format!("{user}@"),
            None => String::new(),
        };
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        format!("{scheme}://{auth}{host}:{port}")
    }

    /// Where Redis is, for logs and status: never a credential.
    pub fn redacted_url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = if self.password.is_some() || self.username.is_some() { "***@" } else { "" };
        match &self.topology {
            Topology::Single => redact_url(&self.connection_url()),
            Topology::Sentinel { sentinels, master, .. } => {
                format!("{scheme}+sentinel://{auth}{}/{master}/{}", topology::describe_hosts(sentinels), self.db)
            }
            Topology::Cluster { nodes } => format!("{scheme}+cluster://{auth}{}", topology::describe_hosts(nodes)),
        }
    }
}

fn encode_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_wins_over_config_file_over_defaults() {
        let cfg = json!({"redis": {"enabled": true, "host": "filehost", "port": 7000, "keyPrefix": "f:"}});
        let s = RedisSettings::resolve(env(&[("REDIS_HOST", "envhost")]), Some(&cfg)).expect("ok");
        assert!(s.enabled);
        assert_eq!((s.host.as_str(), s.port, s.key_prefix.as_str()), ("envhost", 7000, "f:"));
        let s = RedisSettings::resolve(env(&[("REDIS_ENABLED", "FALSE")]), Some(&cfg)).expect("ok");
        assert!(!s.enabled);
        let s = RedisSettings::resolve(env(&[]), None).expect("ok");
        assert!(!s.enabled);
        assert_eq!(s.key_prefix, "aiclient:");
    }

    #[test]
    fn url_enables_and_bad_values_are_named() {
        let s = RedisSettings::resolve(env(&[("REDIS_URL", "redis://127.0.0.1:1/2")]), None).expect("ok");
        assert!(s.enabled);
        let e = RedisSettings::resolve(env(&[("REDIS_ENABLED", "maybe")]), None).expect_err("bad");
        assert!(e.to_string().contains("REDIS_ENABLED"));
        let e = RedisSettings::resolve(env(&[("REDIS_DB", "99")]), None).expect_err("bad");
        assert!(e.to_string().contains("REDIS_DB"));
    }

    #[test]
    fn sentinel_and_cluster_forms() {
        let s = RedisSettings::resolve(
            env(&[
                ("REDIS_SENTINELS", "127.0.0.1:26379, 127.0.0.1:26380"),
                ("REDIS_SENTINEL_MASTER", "prod"),
                ("REDIS_SENTINEL_PASSWORD", "sentinel-secret"),
                ("REDIS_PASSWORD", "data-secret"),
            ]),
            None,
        )
        .expect("ok");
        assert!(s.enabled, "a sentinel list switches Redis on");
        assert!(
            matches!(&s.topology, Topology::Sentinel { master, sentinels, .. } if master == "prod" && sentinels.len() == 2)
        );
        assert_eq!(s.sentinel_url("127.0.0.1", 26379), "redis://:sentinel-secret@127.0.0.1:26379");
        assert_eq!(s.node_url("10.0.0.5", 6379), "redis://:data-secret@10.0.0.5:6379/0");
        let shown = format!("{} {s:?}", s.redacted_url());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("redis+sentinel://***@127.0.0.1:26379,127.0.0.1:26380/prod/0"), "{shown}");

        let url = "rediss+sentinel://app:pw@s1,s2:26380/m/2?sentinelPassword=sp";
        let s = RedisSettings::resolve(env(&[("REDIS_URL", url)]), None).expect("ok");
        assert!(s.tls && s.db == 2 && s.username.as_deref() == Some("app"));
        assert_eq!(s.node_url("h", 1), "rediss://app:pw@h:1/2");

        let cluster = [("REDIS_CLUSTER_NODES", "127.0.0.1:7000"), ("REDIS_KEY_PREFIX", "{aiclient}:")];
        let s = RedisSettings::resolve(env(&cluster), None).expect("ok");
        assert!(matches!(s.topology, Topology::Cluster { .. }));
        let e = RedisSettings::resolve(env(&[("REDIS_URL", "redis+cluster://127.0.0.1:7000")]), None)
            .expect_err("no hash tag");
        assert!(e.to_string().contains("hash tag"), "{e}");
    }

    #[test]
    fn replica_acknowledgement_settings() {
        let s = RedisSettings::resolve(env(&[]), None).expect("ok");
        assert_eq!((s.min_replicas_ack, s.wait_timeout), (None, DEFAULT_WAIT_TIMEOUT));
        let s = RedisSettings::resolve(env(&[("REDIS_MIN_REPLICAS_ACK", "2"), ("REDIS_WAIT_TIMEOUT_MS", "200")]), None)
            .expect("ok");
        assert_eq!((s.min_replicas_ack, s.wait_timeout), (Some(2), Duration::from_millis(200)));
        let s = RedisSettings::resolve(env(&[("REDIS_MIN_REPLICAS_ACK", "AUTO")]), None).expect("ok");
        assert_eq!(s.min_replicas_ack, None);
        for bad in [("REDIS_MIN_REPLICAS_ACK", "one"), ("REDIS_WAIT_TIMEOUT_MS", "-5")] {
            let e = RedisSettings::resolve(env(&[bad]), None).expect_err("bad");
            assert!(e.to_string().contains(bad.0), "{e}");
        }
        let s = RedisSettings::resolve(env(&[("REDIS_WAIT_TIMEOUT_MS", "60000")]), None).expect("ok");
        assert!(s.wait_timeout < s.command_timeout, "a WAIT ends before the command timeout");
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("redis://:hunter2@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact_url("redis://user:hunter2@h/0"), "redis://user:***@h/0");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("rediss://[::1]:6380/2"), "rediss://[::1]:6380/2");
        assert_eq!(redact_url("redis://:pa/ss@h:6379/0"), "redis://:***@h:6379/0", "a '/' in the password");
        assert_eq!(redact_url("redis://:p@ss@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://h/0?password=hunter2"), "redis://h/0?***");
        // Malformed values and non-URLs are never echoed.
        for bad in ["redis:/:SOMEPASSWORD@127.0.0.1:6379/0", "sk-the-api-key", "redis://h ost:1", "", "://x"] {
            let shown = redact_url(bad);
            assert_eq!(shown, UNPARSEABLE_URL, "{bad:?} -> {shown:?}");
        }
        let s = RedisSettings { password: Some("p@ss word".into()), ..Default::default() };
        assert!(s.connection_url().contains("p%40ss%20word"));
        assert!(!s.redacted_url().contains("ss"));
        assert!(!format!("{s:?}").contains("word"));
    }
}
