//! Behind a reverse proxy or load balancer: `listeners.trusted_proxies` lists the
//! addresses (or CIDR ranges) whose word on the client's address is taken, so that limits,
//! the guessing delays, `/metrics` access and logs see the real client. On the HTTP ports
//! that is the `X-Forwarded-For` header (its rightmost address that is not itself a trusted
//! proxy); on the MQTT ports, a PROXY protocol header (v1 or v2, as HAProxy, nginx and
//! cloud load balancers send it), which a trusted proxy must send. Anyone else's headers
//! are ignored.

use std::net::{IpAddr, SocketAddr};

use ppp::HeaderResult;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// An address range, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    network: IpAddr,
    prefix: u8,
}

impl Range {
    /// Parses `ADDRESS` or `ADDRESS/PREFIX`.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Self { network, prefix })
    }

    /// Whether `address` lies in the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Range>);

impl TrustedProxies {
    /// The ranges `listeners.trusted_proxies` lists (checked by the config's validation).
    pub fn new(ranges: &[String]) -> Self {
        Self(ranges.iter().filter_map(|range| Range::parse(range)).collect())
    }

    /// Whether `address` is a trusted proxy.
    pub fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(address))
    }

    /// The client behind an `X-Forwarded-For` value sent by a trusted proxy: the rightmost
    /// entry that is not a trusted proxy itself.
    pub fn forwarded_client(&self, header: &str) -> Option<IpAddr> {
        header
            .rsplit(',')
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .find(|address| !self.trusts(*address))
    }
}

/// Why a PROXY protocol header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The socket failed or closed first.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a PROXY protocol header.
    #[error("not a PROXY protocol header")]
    Invalid,
}

/// The v2 signature's first five bytes.
const V2_START: &[u8; 5] = b"\r\n\r\n\0";
/// The longest v1 header, CRLF included.
const V1_MAX: usize = 107;

/// Reads the PROXY protocol header a trusted proxy sends first, exactly (no byte of the
/// MQTT stream after it), and returns the client's address (the proxy's own for a health
/// check or an unknown family).
pub async fn read_header(stream: &mut TcpStream, proxy: SocketAddr) -> Result<SocketAddr, ProxyHeaderError> {
    let mut header = vec![0u8; 5];
    stream.read_exact(&mut header).await?;
    if &header[..] == b"PROXY" {
        while !header.ends_with(b"\r\n") {
            if header.len() >= V1_MAX {
                return Err(ProxyHeaderError::Invalid);
            }
            header.push(stream.read_u8().await?);
        }
    } else if &header[..] == V2_START {
        header.resize(16, 0);
        stream.read_exact(&mut header[5..]).await?;
        let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
        header.resize(16 + length, 0);
        stream.read_exact(&mut header[16..]).await?;
    } else {
        return Err(ProxyHeaderError::Invalid);
    }
    let source = match HeaderResult::parse(&header) {
        HeaderResult::V1(Ok(parsed)) => match parsed.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Unknown => None,
        },
        HeaderResult::V2(Ok(parsed)) => match (parsed.command, parsed.addresses) {
            (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                Some(SocketAddr::new(a.source_address.into(), a.source_port))
            }
            _ => None,
        },
        _ => return Err(ProxyHeaderError::Invalid),
    };
    Ok(source.unwrap_or(proxy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn ranges_contain_their_addresses() {
        let range = Range::parse("10.0.0.0/8").expect("range");
        assert!(range.contains(ip("10.200.3.4")));
        assert!(!range.contains(ip("11.0.0.1")));
        assert!(range.contains(ip("::ffff:10.1.1.1")), "IPv4-mapped IPv6");
        assert!(Range::parse("127.0.0.1").expect("one").contains(ip("127.0.0.1")));
        assert!(Range::parse("fd00::/8").expect("v6").contains(ip("fd12::1")));
        assert!(Range::parse("0.0.0.0/0").expect("all").contains(ip("8.8.8.8")));
        assert!(Range::parse("10.0.0.0/33").is_none());
        assert!(Range::parse("proxy.lan").is_none());
    }

    #[test]
    fn the_forwarded_client_is_the_rightmost_untrusted_entry() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into()]);
        assert_eq!(
            proxies.forwarded_client("203.0.113.7, 10.0.0.5"),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            proxies.forwarded_client("6.6.6.6, 203.0.113.7"),
            Some(ip("203.0.113.7")),
            "what the client wrote itself stands left of what the proxy added"
        );
        assert_eq!(proxies.forwarded_client("10.0.0.9"), None);
        assert_eq!(proxies.forwarded_client("garbage"), None);
    }
}
