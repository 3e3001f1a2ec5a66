//! Network interfaces from `ip -j addr show` (iproute2's JSON): the first
//! non-loopback UP link (the document's choice of interface for the VIP) and
//! whether a host carries an address (the VIP holder).

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::ProbeError;
use crate::host::{Cmd, Host};

/// One address of a link.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AddrInfo {
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
    #[serde(default)]
    pub label: Option<String>,
}

/// One link with its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Link {
    pub ifname: String,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub operstate: String,
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// `LOWER_UP`: a cable (or a veth peer) is there.
    pub fn has_carrier(&self) -> bool {
        self.flags.iter().any(|f| f == "LOWER_UP")
    }

    pub fn is_loopback(&self) -> bool {
        self.flags.iter().any(|f| f == "LOOPBACK") || self.ifname == "lo"
    }

    /// The first IPv4 address's prefix length.
    pub fn ipv4_prefix(&self) -> Option<u8> {
        self.addr_info
            .iter()
            .find(|a| a.family == "inet")
            .map(|a| a.prefixlen)
    }

    pub fn has_ipv4(&self, ip: Ipv4Addr) -> bool {
        let ip = ip.to_string();
        self.addr_info
            .iter()
            .any(|a| a.family == "inet" && a.local == ip)
    }
}

pub fn addr_cmd() -> Cmd {
    Cmd::new(["ip", "-j", "addr", "show"])
}

pub fn parse_links(json: &str) -> Result<Vec<Link>, ProbeError> {
    serde_json::from_str(json.trim()).map_err(|e| ProbeError::Parse {
        what: "ip -j addr show".into(),
        detail: e.to_string(),
    })
}

pub async fn links(host: &dyn Host) -> Result<Vec<Link>, ProbeError> {
    let out = addr_cmd().check(host).await?;
    parse_links(&out.stdout_lossy())
}

/// The document's interface: the first non-loopback link that is UP (with
/// carrier) and has an IPv4 address; with its prefix length.
pub fn first_up_link(links: &[Link]) -> Option<(&str, u8)> {
    links
        .iter()
        .filter(|l| l.is_up() && l.has_carrier() && !l.is_loopback())
        .find_map(|l| l.ipv4_prefix().map(|p| (l.ifname.as_str(), p)))
}

/// The interface for the VIP: the link that carries the host's own cluster
/// address (a Docker host has bridges such as docker0 or docker_gwbridge
/// that may come first and be up), else the document's first UP link.
pub fn vip_interface(links: &[Link], own: Ipv4Addr) -> Option<(&str, u8)> {
    let own_s = own.to_string();
    links
        .iter()
        .find_map(|l| {
            l.addr_info
                .iter()
                .find(|a| a.family == "inet" && a.local == own_s)
                .map(|a| (l.ifname.as_str(), a.prefixlen))
        })
        .or_else(|| first_up_link(links))
}

/// Whether any link of the host carries `ip`.
pub fn holds(links: &[Link], ip: Ipv4Addr) -> bool {
    links.iter().any(|l| l.has_ipv4(ip))
}

/// Which of `hosts` (by index) carry `ip`, every host asked at once: the
/// VIP must be on exactly one.
pub async fn holders(
    hosts: &[std::sync::Arc<dyn Host>],
    ip: Ipv4Addr,
) -> Result<Vec<usize>, ProbeError> {
    let held = futures_util::future::try_join_all(
        hosts
            .iter()
            .map(|h| async move { Ok::<_, ProbeError>(holds(&links(h.as_ref()).await?, ip)) }),
    )
    .await?;
    Ok(held
        .iter()
        .enumerate()
        .filter(|(_, held)| **held)
        .map(|(i, _)| i)
        .collect())
}

/// Whether `host` can open a TCP connection to `addr:port` within
/// `timeout_s` seconds: the exit status of a bash `/dev/tcp` open, run under
/// `timeout` so a dropped SYN answers "no" instead of hanging.
pub fn tcp_connect_cmd(addr: Ipv4Addr, port: u16, timeout_s: u32) -> Cmd {
    Cmd::new(["timeout", &timeout_s.to_string(), "bash", "-c"])
        .arg("exec 3<>\"/dev/tcp/$1/$2\"")
        .arg("tcp-connect")
        .arg(addr.to_string())
        .arg(port.to_string())
}

/// See [`tcp_connect_cmd`]; an error only when the host itself cannot run
/// the probe.
pub async fn tcp_connects(
    host: &dyn Host,
    addr: Ipv4Addr,
    port: u16,
    timeout_s: u32,
) -> Result<bool, ProbeError> {
    Ok(host
        .run(&tcp_connect_cmd(addr, port, timeout_s))
        .await?
        .success())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a lab host while it held the VIP (trimmed of ipv6).
    const SAMPLE: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"operstate":"UNKNOWN","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},{"ifindex":2,"ifname":"docker0","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],"operstate":"DOWN","addr_info":[{"family":"inet","local":"172.17.0.1","prefixlen":16,"label":"docker0"}]},{"ifindex":115,"link_index":116,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"operstate":"UP","addr_info":[{"family":"inet","local":"172.23.122.1","prefixlen":24,"broadcast":"172.23.122.255","scope":"global","label":"eth0"},{"family":"inet","local":"172.23.122.100","prefixlen":24,"scope":"global","secondary":true,"label":"eth0:0"}]}]"#;

    #[test]
    fn finds_the_first_up_link_and_the_vip() {
        let l = parse_links(SAMPLE).unwrap();
        // docker0 is listed first and UP but has no carrier: skipped.
        assert_eq!(first_up_link(&l), Some(("eth0", 24)));
        assert_eq!(
            vip_interface(&l, "172.23.122.1".parse().unwrap()),
            Some(("eth0", 24))
        );
        assert_eq!(
            vip_interface(&l, "10.9.9.9".parse().unwrap()),
            Some(("eth0", 24))
        );
        assert!(holds(&l, "172.23.122.100".parse().unwrap()));
        assert!(!holds(&l, "172.23.122.99".parse().unwrap()));
    }

    #[test]
    fn garbage_names_the_probe() {
        assert!(
            parse_links("nope")
                .unwrap_err()
                .to_string()
                .contains("ip -j addr show")
        );
    }
}
