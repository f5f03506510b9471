//! Admin settings (reference-proxy.md §6): login expiry and brute-force guard, proxy trust for
//! the client address, and the UI switch. Read from the config like every other setting, so
//! a change through `POST /api/config` applies on every replica.

use std::net::IpAddr;
use std::time::Duration;

use poolgate_store::LoginPolicy;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct AdminSettings {
    /// `LOGIN_EXPIRY` seconds (default 3600).
    pub login_expiry: Duration,
    /// `LOGIN_MAX_ATTEMPTS` (5), `LOGIN_LOCKOUT_DURATION` seconds (1800), `LOGIN_MIN_INTERVAL`
    /// ms (5000).
    pub policy: LoginPolicy,
    /// `TRUST_PROXY` (false): read the client address from `X-Forwarded-For` when the peer is
    /// one of `TRUSTED_PROXY_IPS` (default loopback).
    pub trust_proxy: bool,
    pub trusted_proxies: Vec<IpAddr>,
    /// `UI_ENABLED` (true): serve the dashboard; the admin API stays up either way.
    pub ui_enabled: bool,
}

impl AdminSettings {
    pub fn read(raw: &Value, env: &impl Fn(&str) -> Option<String>) -> Self {
        let num = |k: &str, default: u64| {
            env(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .or_else(|| raw.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())))
                .unwrap_or(default)
        };
        let flag = |k: &str, default: bool| {
            env(k)
                .or_else(|| raw.get(k).map(|v| v.to_string().trim_matches('"').to_string()))
                .and_then(|v| poolgate_store::settings::parse_bool(&v))
                .unwrap_or(default)
        };
        let trusted = match env("TRUSTED_PROXY_IPS") {
            Some(list) => list.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
            None => match raw.get("TRUSTED_PROXY_IPS") {
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str()?.trim().parse().ok()).collect(),
                Some(Value::String(s)) => s.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
                _ => vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])],
            },
        };
        Self {
            login_expiry: Duration::from_secs(num("LOGIN_EXPIRY", 3600).max(1)),
            policy: LoginPolicy {
                max_attempts: u32::try_from(num("LOGIN_MAX_ATTEMPTS", 5)).unwrap_or(u32::MAX).max(1),
                lockout: Duration::from_secs(num("LOGIN_LOCKOUT_DURATION", 1800)),
                min_interval: Duration::from_millis(num("LOGIN_MIN_INTERVAL", 5000)),
            },
            trust_proxy: flag("TRUST_PROXY", false),
            trusted_proxies: trusted,
            ui_enabled: flag("UI_ENABLED", true),
        }
    }

    /// The client's address: the peer, or with `TRUST_PROXY` and a trusted peer, the last
    /// address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trust_proxy || !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let Some(chain) = forwarded_for else { return Some(peer) };
        let hops: Vec<IpAddr> = chain.split(',').filter_map(|h| h.trim().parse().ok()).collect();
        Some(hops.iter().rev().find(|ip| !self.trusted_proxies.contains(ip)).copied().unwrap_or(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        /// Whatever a client writes in X-Forwarded-For, an untrusted peer stays itself, and
        /// the answer is always the peer or one of the listed addresses.
        #[test]
        fn forwarded_for_never_panics_or_invents(xff in "[ -~]{0,64}", trusted_peer in any::<bool>()) {
            let mut s = AdminSettings::read(&json!({"TRUST_PROXY": true}), &|_| None);
            if !trusted_peer {
                s.trusted_proxies.clear();
            }
            let peer: IpAddr = [127, 0, 0, 1].into();
            let got = s.client_ip(Some(peer), Some(&xff)).expect("an address");
            let listed: Vec<IpAddr> = xff.split(',').filter_map(|h| h.trim().parse().ok()).collect();
            prop_assert!(got == peer || (trusted_peer && listed.contains(&got)));
        }
    }

    #[test]
    fn reference_defaults_and_overrides() {
        let s = AdminSettings::read(&json!({}), &|_| None);
        assert_eq!(s.login_expiry, Duration::from_secs(3600));
        assert_eq!((s.policy.max_attempts, s.policy.lockout.as_secs()), (5, 1800));
        assert_eq!(s.policy.min_interval, Duration::from_millis(5000));
        assert!(!s.trust_proxy && s.ui_enabled);
        let s = AdminSettings::read(
            &json!({"LOGIN_EXPIRY": "60", "LOGIN_MAX_ATTEMPTS": 2, "UI_ENABLED": false, "TRUST_PROXY": true}),
            &|k| (k == "LOGIN_MIN_INTERVAL").then(|| "0".to_string()),
        );
        assert_eq!((s.login_expiry.as_secs(), s.policy.max_attempts), (60, 2));
        assert_eq!(s.policy.min_interval, Duration::ZERO);
        assert!(s.trust_proxy && !s.ui_enabled);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_peer() {
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let mut s = AdminSettings::read(&json!({}), &|_| None);
        let xff = Some("203.0.113.9, 10.0.0.1");
        assert_eq!(s.client_ip(ip("127.0.0.1"), xff), ip("127.0.0.1"), "TRUST_PROXY off");
        s.trust_proxy = true;
        assert_eq!(s.client_ip(ip("127.0.0.1"), xff), ip("10.0.0.1"), "the nearest untrusted hop");
        s.trusted_proxies.push("10.0.0.1".parse().expect("ip"));
        assert_eq!(s.client_ip(ip("127.0.0.1"), xff), ip("203.0.113.9"));
        assert_eq!(s.client_ip(ip("192.0.2.7"), xff), ip("192.0.2.7"), "untrusted peers cannot spoof");
        assert_eq!(s.client_ip(ip("127.0.0.1"), Some("garbage")), ip("127.0.0.1"));
    }
}
