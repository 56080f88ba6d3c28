//! Which pages may open the MQTT WebSocket (cross-site WebSocket hijacking): browsers
//! send the page's `Origin` with the upgrade, and any page the user has open could
//! otherwise reach a broker on localhost or the LAN. An upgrade without `Origin` is not
//! from a browser page and is let through (credentials and the ACL still apply).
//!
//! `listeners.allowed_origins` empty: the broker's own origin (the `Origin` names the
//! `Host` the request was sent to: the page the broker serves) and loopback origins.
//! A list replaces that default; `"*"` allows every origin.

/// An origin's scheme, host (lower case, IPv6 in brackets) and port, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// Parses `scheme://host[:port]` (no path); `None` for anything else, such as `null`.
pub fn parse(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.trim().trim_end_matches('/').split_once("://")?;
    if scheme.is_empty() || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some(Origin {
        scheme: scheme.to_ascii_lowercase(),
        host,
        port,
    })
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port.parse().ok()?)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

impl Origin {
    fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host.ends_with(".localhost")
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The port, or the scheme's default.
    fn effective_port(&self) -> Option<u16> {
        self.port.or(match self.scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        })
    }
}

/// Whether a page of `origin` may upgrade a request sent to `host` (its `Host` header).
pub fn allowed(allowed_origins: &[String], origin: &str, host: Option<&str>) -> bool {
    if allowed_origins.iter().any(|allowed| allowed == "*") {
        return true;
    }
    let Some(origin) = parse(origin) else {
        return false;
    };
    if !allowed_origins.is_empty() {
        return allowed_origins
            .iter()
            .filter_map(|allowed| parse(allowed))
            .any(|allowed| {
                allowed.scheme == origin.scheme
                    && allowed.host == origin.host
                    && allowed.effective_port() == origin.effective_port()
            });
    }
    if origin.is_loopback() {
        return true;
    }
    let Some((host, port)) = host.and_then(split_host_port) else {
        return false;
    };
    host == origin.host && port.or(origin.effective_port()) == origin.effective_port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_the_own_page_and_loopback_pages_may_connect() {
        let none: &[String] = &[];
        assert!(allowed(none, "http://localhost:5173", Some("127.0.0.1:8080")));
        assert!(allowed(none, "http://127.0.0.1:3000", Some("127.0.0.1:8080")));
        assert!(allowed(none, "http://[::1]:3000", Some("[::1]:8080")));
        assert!(
            allowed(none, "http://broker.lan:8080", Some("broker.lan:8080")),
            "the page it serves"
        );
        assert!(allowed(none, "https://broker.example", Some("broker.example")));
        assert!(!allowed(none, "https://evil.example", Some("127.0.0.1:8080")));
        assert!(!allowed(none, "http://broker.lan:9999", Some("broker.lan:8080")));
        assert!(!allowed(none, "null", Some("127.0.0.1:8080")));
        assert!(!allowed(none, "https://evil.example", None));
    }

    #[test]
    fn a_list_replaces_the_default_and_a_star_allows_all() {
        let list = vec!["https://app.example.com".to_owned()];
        assert!(allowed(
            &list,
            "https://app.example.com",
            Some("mqtt.example.com")
        ));
        assert!(allowed(
            &list,
            "https://APP.example.com:443",
            Some("mqtt.example.com")
        ));
        assert!(!allowed(
            &list,
            "http://app.example.com",
            Some("mqtt.example.com")
        ));
        assert!(
            !allowed(&list, "http://localhost:3000", Some("localhost:8080")),
            "the list replaces loopback too"
        );
        assert!(allowed(&["*".to_owned()], "https://evil.example", None));
    }

    #[test]
    fn origins_parse_strictly() {
        assert!(parse("https://app.example.com/").is_some());
        assert!(parse("https://app.example.com/path").is_none());
        assert!(parse("app.example.com").is_none());
        assert!(parse("https://:443").is_none());
        assert!(parse("https://a.example:99999").is_none());
    }
}
