//! Gluster state from the CLI's `--xml` answers (`gluster pool list`,
//! `gluster volume info|status <vol>`, `gluster volume heal <vol> info`) and
//! mount state from `/proc/mounts`, parsed into typed structs.
//!
//! Every `--xml` answer is a `<cliOutput>` envelope whose `opRet`/`opErrstr`
//! carry the CLI's own verdict, while the process usually exits 0 even when
//! the operation failed. The parsers therefore report such a verdict as
//! [`XmlError::Cli`], and the host-facing probes turn it into a failed
//! command naming the host, so that "volume is not started" reads like any
//! other failing command.

use std::fmt;

use roxmltree::{Document, Node};
use thiserror::Error;

use super::ProbeError;
use crate::host::{Cmd, Host, HostError};

/// Why an `--xml` answer gave no value.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum XmlError {
    /// The CLI answered, and its verdict was a failure.
    #[error("gluster answered opRet `{op_ret}` (errno `{op_errno}`): {message}")]
    Cli {
        op_ret: i32,
        op_errno: i32,
        message: String,
    },
    /// The text is not the XML shape gluster prints.
    #[error("{0}")]
    Malformed(String),
}

// ---------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------

/// What glusterd thinks of a peer (`stateStr`); the local entry has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// The `localhost` entry of `pool list`: this host itself.
    Local,
    /// `Peer in Cluster`: a full member.
    InCluster,
    /// `Peer Rejected`: configuration differs; needs an operator.
    Rejected,
    /// A transitional state (`Accepted peer request`, `Probe Sent to Peer`…).
    Other(String),
}

/// One entry of `gluster pool list --xml` (or `peer status --xml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uuid: String,
    /// The name the peer was probed by; `localhost` for the host itself.
    pub hostname: String,
    /// Every name and address the peer is known by.
    pub hostnames: Vec<String>,
    pub connected: bool,
    pub state: PeerState,
}

impl Peer {
    pub fn is_local(&self) -> bool {
        self.state == PeerState::Local
    }

    /// Whether `name` designates this peer (host names are case-insensitive).
    pub fn answers_to(&self, name: &str) -> bool {
        self.hostname.eq_ignore_ascii_case(name)
            || self.hostnames.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Connected and a full member of the pool.
    pub fn is_healthy(&self) -> bool {
        self.connected && matches!(self.state, PeerState::Local | PeerState::InCluster)
    }
}

/// The pool as one host sees it, checked against the host names it must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSummary {
    pub peers: usize,
    pub healthy: usize,
    /// Names that no peer answers to, or whose peer is not healthy.
    pub missing: Vec<String>,
}

impl PoolSummary {
    /// `others`: every host name except the probing host's own.
    pub fn of(peers: &[Peer], others: &[&str]) -> Self {
        let missing = others
            .iter()
            .filter(|n| !peers.iter().any(|p| p.answers_to(n) && p.is_healthy()))
            .map(|n| n.to_string())
            .collect();
        PoolSummary {
            peers: peers.len(),
            healthy: peers.iter().filter(|p| p.is_healthy()).count(),
            missing,
        }
    }

    /// Every named host and the local one connected and in the pool.
    pub fn is_complete(&self, n: usize) -> bool {
        self.peers == n && self.healthy == n && self.missing.is_empty()
    }
}

impl fmt::Display for PoolSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} peers, {} connected in cluster",
            self.peers, self.healthy
        )?;
        if !self.missing.is_empty() {
            write!(f, ", not yet: {}", self.missing.join(", "))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Volumes
// ---------------------------------------------------------------------------

/// A volume's life-cycle state (`<status>` of `volume info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeState {
    Created,
    Started,
    Stopped,
}

/// The volume's layout (`typeStr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeType {
    Distribute,
    Replicate,
    Disperse,
    DistributedReplicate,
    DistributedDisperse,
    Other(String),
}

impl VolumeType {
    fn parse(s: &str) -> Self {
        match s {
            "Distribute" => VolumeType::Distribute,
            "Replicate" => VolumeType::Replicate,
            "Disperse" => VolumeType::Disperse,
            "Distributed-Replicate" => VolumeType::DistributedReplicate,
            "Distributed-Disperse" => VolumeType::DistributedDisperse,
            other => VolumeType::Other(other.to_string()),
        }
    }
}

/// One brick of `volume info`: `host:path` on the peer `host_uuid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brick {
    pub host: String,
    pub path: String,
    pub host_uuid: String,
    pub is_arbiter: bool,
}

impl Brick {
    /// `host:path`, as `volume create` takes it.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.host, self.path)
    }
}

/// One volume of `gluster volume info <vol> --xml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub id: String,
    pub state: VolumeState,
    pub kind: VolumeType,
    pub brick_count: u32,
    pub replica_count: u32,
    pub arbiter_count: u32,
    pub bricks: Vec<Brick>,
    /// Options set on the volume (`volume set` and create-time defaults).
    pub options: Vec<(String, String)>,
}

impl Volume {
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A brick process as `gluster volume status <vol> --xml` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrickStatus {
    pub host: String,
    pub path: String,
    pub peer_id: String,
    pub online: bool,
    /// The brick's TCP port; `None` while it is offline (`N/A`).
    pub port: Option<u16>,
    pub pid: Option<u32>,
}

/// A volume daemon (self-heal, NFS, quota…) of `volume status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonStatus {
    /// `Self-heal Daemon`, …
    pub name: String,
    /// The host it runs on; `localhost` for the probing host.
    pub host: String,
    pub peer_id: String,
    pub online: bool,
    pub pid: Option<u32>,
}

/// `gluster volume status <vol> --xml` of a started volume. Bricks of peers
/// whose glusterd is unreachable are absent, not offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeStatus {
    pub name: String,
    pub bricks: Vec<BrickStatus>,
    pub daemons: Vec<DaemonStatus>,
}

impl VolumeStatus {
    pub fn online_bricks(&self) -> usize {
        self.bricks.iter().filter(|b| b.online).count()
    }
}

impl fmt::Display for VolumeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} listed bricks online",
            self.online_bricks(),
            self.bricks.len()
        )?;
        for b in self.bricks.iter().filter(|b| !b.online) {
            write!(f, ", `{}:{}` offline", b.host, b.path)?;
        }
        Ok(())
    }
}

/// One brick of `gluster volume heal <vol> info --xml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealBrick {
    pub host: String,
    pub path: String,
    /// `Connected`, or the reason the brick could not be asked
    /// (`Transport endpoint is not connected`).
    pub status: String,
    /// Entries waiting for heal; `None` when the brick could not be asked.
    pub pending: Option<u64>,
}

impl HealBrick {
    pub fn connected(&self) -> bool {
        self.status == "Connected"
    }
}

/// Pending self-heal entries per brick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealInfo {
    pub bricks: Vec<HealBrick>,
}

impl HealInfo {
    /// Entries pending over the bricks that answered.
    pub fn total_pending(&self) -> u64 {
        self.bricks.iter().filter_map(|b| b.pending).sum()
    }

    /// Whether every brick answered and none has anything pending.
    pub fn is_clean(&self) -> bool {
        self.bricks.iter().all(|b| b.pending == Some(0))
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

fn malformed(what: impl Into<String>) -> XmlError {
    XmlError::Malformed(what.into())
}

/// The `<cliOutput>` root after checking its verdict.
fn envelope(doc: &Document<'_>) -> Result<(), XmlError> {
    let root = doc.root_element();
    if !root.has_tag_name("cliOutput") {
        return Err(malformed(format!(
            "the root element is `{}`, not `cliOutput`",
            root.tag_name().name()
        )));
    }
    let op_ret: i32 = number(root, "opRet")?.unwrap_or(0);
    if op_ret != 0 {
        return Err(XmlError::Cli {
            op_ret,
            op_errno: number(root, "opErrno")?.unwrap_or(0),
            message: text(root, "opErrstr").unwrap_or_default().to_string(),
        });
    }
    Ok(())
}

fn parse_doc(xml: &str) -> Result<Document<'_>, XmlError> {
    Document::parse(xml.trim()).map_err(|e| malformed(e.to_string()))
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |n| n.has_tag_name(name))
}

/// The trimmed text of the child element `name`.
fn text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).map(|c| c.text().unwrap_or("").trim())
}

fn required<'a>(node: Node<'a, '_>, name: &str) -> Result<&'a str, XmlError> {
    text(node, name)
        .ok_or_else(|| malformed(format!("`<{}>` has no `<{name}>`", node.tag_name().name())))
}

/// A numeric child; `N/A` and `-` (gluster's "unknown") are `None`.
fn number<T: std::str::FromStr>(node: Node<'_, '_>, name: &str) -> Result<Option<T>, XmlError> {
    match text(node, name) {
        None | Some("N/A" | "-" | "") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| malformed(format!("`<{name}>` is not a number: `{s}`"))),
    }
}

/// A process id; an offline brick reports `-1`.
fn pid(node: Node<'_, '_>) -> Result<Option<u32>, XmlError> {
    Ok(number::<i64>(node, "pid")?.and_then(|p| u32::try_from(p).ok().filter(|p| *p > 0)))
}

fn flag(node: Node<'_, '_>, name: &str) -> Result<bool, XmlError> {
    Ok(number::<u8>(node, name)?.unwrap_or(0) == 1)
}

/// Splits `host:/path` at the first colon followed by `/`.
fn split_brick(spec: &str) -> Result<(String, String), XmlError> {
    spec.find(":/")
        .map(|i| (spec[..i].to_string(), spec[i + 1..].to_string()))
        .ok_or_else(|| malformed(format!("brick `{spec}` is not `host:/path`")))
}

/// Parses `gluster pool list --xml` or `gluster peer status --xml`.
pub fn parse_pool_list(xml: &str) -> Result<Vec<Peer>, XmlError> {
    let doc = parse_doc(xml)?;
    envelope(&doc)?;
    let status =
        child(doc.root_element(), "peerStatus").ok_or_else(|| malformed("no `<peerStatus>`"))?;
    children(status, "peer")
        .map(|p| {
            let hostname = required(p, "hostname")?.to_string();
            let hostnames = child(p, "hostnames")
                .map(|hs| {
                    children(hs, "hostname")
                        .map(|h| h.text().unwrap_or("").trim().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let state = match text(p, "stateStr") {
                None => PeerState::Local,
                Some("Peer in Cluster") => PeerState::InCluster,
                Some("Peer Rejected") => PeerState::Rejected,
                Some(other) => PeerState::Other(other.to_string()),
            };
            Ok(Peer {
                uuid: required(p, "uuid")?.to_string(),
                hostname,
                hostnames,
                connected: flag(p, "connected")?,
                state,
            })
        })
        .collect()
}

/// Parses `gluster volume info <vol> --xml`; `None` when the volume does not
/// exist.
pub fn parse_volume_info(xml: &str) -> Result<Option<Volume>, XmlError> {
    let doc = parse_doc(xml)?;
    match envelope(&doc) {
        Err(XmlError::Cli { message, .. }) if message.contains("does not exist") => {
            return Ok(None);
        }
        r => r?,
    }
    let volumes = child(doc.root_element(), "volInfo")
        .and_then(|v| child(v, "volumes"))
        .ok_or_else(|| malformed("no `<volInfo><volumes>`"))?;
    let Some(v) = child(volumes, "volume") else {
        return Ok(None);
    };
    let state = match number::<u8>(v, "status")? {
        Some(0) => VolumeState::Created,
        Some(1) => VolumeState::Started,
        Some(2) => VolumeState::Stopped,
        other => return Err(malformed(format!("unknown volume status `{other:?}`"))),
    };
    let bricks = child(v, "bricks")
        .map(|bs| {
            children(bs, "brick")
                .map(|b| {
                    // The brick element holds `host:path` both as leading
                    // text and as `<name>`; the child is the stable one.
                    let (host, path) = split_brick(required(b, "name")?)?;
                    Ok(Brick {
                        host,
                        path,
                        host_uuid: text(b, "hostUuid").unwrap_or_default().to_string(),
                        is_arbiter: flag(b, "isArbiter")?,
                    })
                })
                .collect::<Result<Vec<_>, XmlError>>()
        })
        .transpose()?
        .unwrap_or_default();
    let options = child(v, "options")
        .map(|os| {
            children(os, "option")
                .map(|o| {
                    Ok((
                        required(o, "name")?.to_string(),
                        text(o, "value").unwrap_or_default().to_string(),
                    ))
                })
                .collect::<Result<Vec<_>, XmlError>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Some(Volume {
        name: required(v, "name")?.to_string(),
        id: text(v, "id").unwrap_or_default().to_string(),
        state,
        kind: VolumeType::parse(required(v, "typeStr")?),
        brick_count: number(v, "brickCount")?.unwrap_or(0),
        replica_count: number(v, "replicaCount")?.unwrap_or(0),
        arbiter_count: number(v, "arbiterCount")?.unwrap_or(0),
        bricks,
        options,
    }))
}

/// Parses `gluster volume status <vol> --xml` (a started volume; a stopped
/// or missing one is the CLI's failure `Volume … is not started`).
pub fn parse_volume_status(xml: &str) -> Result<VolumeStatus, XmlError> {
    let doc = parse_doc(xml)?;
    envelope(&doc)?;
    let v = child(doc.root_element(), "volStatus")
        .and_then(|s| child(s, "volumes"))
        .and_then(|s| child(s, "volume"))
        .ok_or_else(|| malformed("no `<volStatus><volumes><volume>`"))?;
    let mut bricks = Vec::new();
    let mut daemons = Vec::new();
    for n in children(v, "node") {
        let host = required(n, "hostname")?.to_string();
        let path = required(n, "path")?.to_string();
        let peer_id = text(n, "peerid").unwrap_or_default().to_string();
        let online = flag(n, "status")?;
        let pid = pid(n)?;
        // A brick's path is absolute; a daemon's "path" is the host it runs
        // on and its "hostname" the daemon's name.
        if path.starts_with('/') {
            bricks.push(BrickStatus {
                host,
                path,
                peer_id,
                online,
                port: number(n, "port")?,
                pid,
            });
        } else {
            daemons.push(DaemonStatus {
                name: host,
                host: path,
                peer_id,
                online,
                pid,
            });
        }
    }
    Ok(VolumeStatus {
        name: required(v, "volName")?.to_string(),
        bricks,
        daemons,
    })
}

/// Parses `gluster volume heal <vol> info --xml`.
pub fn parse_heal_info(xml: &str) -> Result<HealInfo, XmlError> {
    let doc = parse_doc(xml)?;
    envelope(&doc)?;
    let bricks = child(doc.root_element(), "healInfo")
        .and_then(|h| child(h, "bricks"))
        .ok_or_else(|| malformed("no `<healInfo><bricks>`"))?;
    let bricks = children(bricks, "brick")
        .map(|b| {
            let (host, path) = split_brick(required(b, "name")?)?;
            Ok(HealBrick {
                host,
                path,
                status: text(b, "status").unwrap_or_default().to_string(),
                pending: number(b, "numberOfEntries")?,
            })
        })
        .collect::<Result<Vec<_>, XmlError>>()?;
    Ok(HealInfo { bricks })
}

// ---------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------

/// One line of `/proc/mounts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub options: String,
}

/// The filesystem type of a Gluster FUSE mount in `/proc/mounts`.
pub const GLUSTER_FSTYPE: &str = "fuse.glusterfs";

/// Undoes the kernel's octal escapes (`\040` for a space) of mount fields.
fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            (b'0'..=b'3').contains(&d[0]) && d[1..].iter().all(|c| (b'0'..=b'7').contains(c))
        });
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/mounts` (or `/proc/self/mounts`); short lines are skipped.
pub fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(MountEntry {
                source: unescape_mount_field(f.next()?),
                target: unescape_mount_field(f.next()?),
                fstype: f.next()?.to_string(),
                options: f.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The last mount at `path` (the one that hides the others), if any.
pub fn mount_at<'a>(mounts: &'a [MountEntry], path: &str) -> Option<&'a MountEntry> {
    let path = path.trim_end_matches('/');
    mounts.iter().rev().find(|m| m.target == path)
}

// ---------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------

pub fn pool_list_cmd() -> Cmd {
    Cmd::new(["gluster", "pool", "list", "--xml"])
}

pub fn volume_info_cmd(volume: &str) -> Cmd {
    Cmd::new(["gluster", "volume", "info"])
        .arg(volume)
        .arg("--xml")
}

pub fn volume_status_cmd(volume: &str) -> Cmd {
    Cmd::new(["gluster", "volume", "status"])
        .arg(volume)
        .arg("--xml")
}

pub fn heal_info_cmd(volume: &str) -> Cmd {
    Cmd::new(["gluster", "volume", "heal"])
        .arg(volume)
        .arg("info")
        .arg("--xml")
}

/// `cat /proc/mounts`: a command rather than a file read, because the mount
/// table is the kernel's live state, not a file a step writes.
pub fn mounts_cmd() -> Cmd {
    Cmd::new(["cat", "/proc/mounts"])
}

/// Runs `cmd` on `host` and parses its XML; the CLI's own failure verdict
/// becomes a failed command naming the host.
async fn ask<T>(
    host: &dyn Host,
    cmd: Cmd,
    parse: impl FnOnce(&str) -> Result<T, XmlError>,
) -> Result<T, ProbeError> {
    let out = cmd.check(host).await?;
    parse(&out.stdout_lossy()).map_err(|e| match e {
        XmlError::Cli {
            op_ret, message, ..
        } => ProbeError::Host(HostError::Failed {
            host: host.name().to_string(),
            command: cmd.to_string(),
            code: op_ret,
            stderr: message,
        }),
        XmlError::Malformed(detail) => ProbeError::Parse {
            what: cmd.to_string(),
            detail,
        },
    })
}

/// The trusted pool as `host` sees it (itself included, as `localhost`).
pub async fn pool_list(host: &dyn Host) -> Result<Vec<Peer>, ProbeError> {
    ask(host, pool_list_cmd(), parse_pool_list).await
}

/// The volume `volume`, or `None` when it does not exist.
pub async fn volume_info(host: &dyn Host, volume: &str) -> Result<Option<Volume>, ProbeError> {
    ask(host, volume_info_cmd(volume), parse_volume_info).await
}

/// The processes of a started volume.
pub async fn volume_status(host: &dyn Host, volume: &str) -> Result<VolumeStatus, ProbeError> {
    ask(host, volume_status_cmd(volume), parse_volume_status).await
}

/// Pending self-heal entries of a started volume.
pub async fn heal_info(host: &dyn Host, volume: &str) -> Result<HealInfo, ProbeError> {
    ask(host, heal_info_cmd(volume), parse_heal_info).await
}

/// The host's mount table.
pub async fn mounts(host: &dyn Host) -> Result<Vec<MountEntry>, ProbeError> {
    let out = mounts_cmd().check(host).await?;
    Ok(parse_mounts(&out.stdout_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Captured from a three-node lab (glusterfs 11.1, Debian trixie); see
    // tests/fixtures/gluster/README.md for how each state was produced.
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/gluster/", $name, ".xml"))
        };
    }

    const OTHERS: [&str; 2] = ["ke2-server2", "ke2-server3"];

    #[test]
    fn pool_of_a_lone_host_is_only_localhost() {
        let peers = parse_pool_list(fixture!("pool_list_alone")).unwrap();
        assert_eq!(peers.len(), 1);
        assert!(peers[0].is_local() && peers[0].connected);
        let s = PoolSummary::of(&peers, &OTHERS);
        assert!(!s.is_complete(3), "{s}");
        assert_eq!(s.missing, ["ke2-server2", "ke2-server3"]);
    }

    #[test]
    fn pool_of_three_connected_peers() {
        let peers = parse_pool_list(fixture!("pool_list_connected")).unwrap();
        assert_eq!(peers.len(), 3);
        let p2 = peers.iter().find(|p| p.answers_to("ke2-server2")).unwrap();
        assert_eq!(p2.state, PeerState::InCluster);
        assert_eq!(p2.hostnames, ["ke2-server2"]);
        assert!(p2.connected);
        assert_eq!(peers.iter().filter(|p| p.is_local()).count(), 1);
        let s = PoolSummary::of(&peers, &OTHERS);
        assert!(s.is_complete(3), "{s}");
    }

    #[test]
    fn peer_status_lists_the_others_only() {
        let peers = parse_pool_list(fixture!("peer_status_connected")).unwrap();
        assert_eq!(peers.len(), 2);
        assert!(peers.iter().all(|p| p.is_healthy() && !p.is_local()));
    }

    #[test]
    fn a_peer_whose_glusterd_died_is_disconnected_but_still_in_cluster() {
        let peers = parse_pool_list(fixture!("pool_list_peer_disconnected")).unwrap();
        let p3 = peers.iter().find(|p| p.answers_to("KE2-SERVER3")).unwrap();
        assert!(!p3.connected);
        assert_eq!(p3.state, PeerState::InCluster);
        let s = PoolSummary::of(&peers, &OTHERS);
        assert!(!s.is_complete(3));
        assert_eq!(s.missing, ["ke2-server3"]);
        assert_eq!(
            s.to_string(),
            "3 peers, 2 connected in cluster, not yet: ke2-server3"
        );
    }

    #[test]
    fn missing_volume_is_none() {
        assert_eq!(
            parse_volume_info(fixture!("volume_info_absent")).unwrap(),
            None
        );
    }

    #[test]
    fn created_volume_is_a_replica_3_of_the_three_bricks() {
        let v = parse_volume_info(fixture!("volume_info_created"))
            .unwrap()
            .unwrap();
        assert_eq!(v.name, "gvol0");
        assert_eq!(v.state, VolumeState::Created);
        assert_eq!(v.kind, VolumeType::Replicate);
        assert_eq!((v.brick_count, v.replica_count, v.arbiter_count), (3, 3, 0));
        let specs: Vec<String> = v.bricks.iter().map(Brick::spec).collect();
        assert_eq!(
            specs,
            [
                "ke2-server1:/var/glustervol0",
                "ke2-server2:/var/glustervol0",
                "ke2-server3:/var/glustervol0"
            ]
        );
        assert!(
            v.bricks
                .iter()
                .all(|b| !b.is_arbiter && b.host_uuid.len() == 36)
        );
        assert_eq!(v.option("network.ping-timeout"), None);
        assert_eq!(v.option("nfs.disable"), Some("on"));
    }

    #[test]
    fn started_volume_carries_the_lab_ping_timeout() {
        let v = parse_volume_info(fixture!("volume_info_started"))
            .unwrap()
            .unwrap();
        assert_eq!(v.state, VolumeState::Started);
        assert_eq!(v.option("network.ping-timeout"), Some("5"));
        let s = parse_volume_info(fixture!("volume_info_stopped"))
            .unwrap()
            .unwrap();
        assert_eq!(s.state, VolumeState::Stopped);
    }

    #[test]
    fn status_of_a_healthy_volume_has_three_bricks_online_with_ports() {
        let s = parse_volume_status(fixture!("volume_status_started")).unwrap();
        assert_eq!(s.name, "gvol0");
        assert_eq!(s.bricks.len(), 3);
        assert_eq!(s.online_bricks(), 3);
        assert!(s.bricks.iter().all(|b| b.port.is_some() && b.pid.is_some()));
        assert_eq!(s.bricks[0].host, "ke2-server1");
        assert_eq!(s.bricks[0].path, "/var/glustervol0");
        assert_eq!(s.daemons.len(), 3);
        assert!(
            s.daemons
                .iter()
                .all(|d| d.name == "Self-heal Daemon" && d.online)
        );
        assert_eq!(s.daemons[0].host, "localhost");
    }

    #[test]
    fn status_with_a_killed_brick_shows_it_offline_without_port() {
        let s = parse_volume_status(fixture!("volume_status_brick_offline")).unwrap();
        assert_eq!(s.bricks.len(), 3);
        assert_eq!(s.online_bricks(), 2);
        let b3 = s.bricks.iter().find(|b| b.host == "ke2-server3").unwrap();
        assert!(!b3.online);
        assert_eq!((b3.port, b3.pid), (None, None));
        assert_eq!(
            s.to_string(),
            "2 of 3 listed bricks online, `ke2-server3:/var/glustervol0` offline"
        );
    }

    #[test]
    fn status_with_a_disconnected_peer_omits_its_brick() {
        let s = parse_volume_status(fixture!("volume_status_peer_disconnected")).unwrap();
        assert_eq!(s.bricks.len(), 2);
        assert!(s.bricks.iter().all(|b| b.host != "ke2-server3"));
        assert_eq!(s.online_bricks(), 2);
    }

    #[test]
    fn status_of_a_volume_not_started_is_the_clis_verdict() {
        let e = parse_volume_status(fixture!("volume_status_created")).unwrap_err();
        assert_eq!(
            e,
            XmlError::Cli {
                op_ret: -1,
                op_errno: 30800,
                message: "Volume gvol0 is not started".into()
            }
        );
        let e = parse_volume_status(fixture!("volume_status_absent")).unwrap_err();
        assert!(e.to_string().contains("Volume gvol0 does not exist"), "{e}");
    }

    #[test]
    fn heal_info_clean() {
        let h = parse_heal_info(fixture!("heal_info_clean")).unwrap();
        assert_eq!(h.bricks.len(), 3);
        assert!(h.is_clean());
        assert_eq!(h.total_pending(), 0);
    }

    #[test]
    fn heal_info_with_a_brick_down_counts_pending_on_the_others() {
        let h = parse_heal_info(fixture!("heal_info_brick_offline")).unwrap();
        let pending: Vec<Option<u64>> = h.bricks.iter().map(|b| b.pending).collect();
        assert_eq!(pending, [Some(6), Some(6), None]);
        assert_eq!(h.total_pending(), 12);
        assert!(!h.is_clean());
        assert!(!h.bricks[2].connected());
        assert_eq!(h.bricks[2].status, "Transport endpoint is not connected");
        assert_eq!(h.bricks[2].host, "ke2-server3");
    }

    #[test]
    fn garbage_and_foreign_xml_are_malformed() {
        assert!(matches!(
            parse_pool_list("Connection failed. Please check if gluster daemon is operational."),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_volume_info("<?xml version=\"1.0\"?><html/>"),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn proc_mounts_with_a_gluster_mount() {
        let text = "fuse-overlayfs / fuse.fuse-overlayfs rw,nodev,noatime 0 0\n\
                    tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime 0 0\n\
                    localhost:/gvol0 /mnt/gluster fuse.glusterfs rw,relatime,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072 0 0\n\
                    /dev/sda1 /mnt/with\\040space ext4 rw 0 0\n";
        let m = parse_mounts(text);
        assert_eq!(m.len(), 4);
        let g = mount_at(&m, "/mnt/gluster/").unwrap();
        assert_eq!(g.source, "localhost:/gvol0");
        assert_eq!(g.fstype, GLUSTER_FSTYPE);
        assert!(mount_at(&m, "/mnt/with space").is_some());
        assert!(mount_at(&m, "/mnt").is_none());
    }

    /// Renders peers the way `gluster pool list --xml` does.
    fn render_pool(peers: &[Peer]) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<cliOutput>\n  \
             <opRet>0</opRet>\n  <opErrno>0</opErrno>\n  <opErrstr/>\n  <peerStatus>\n",
        );
        for p in peers {
            x += &format!(
                "    <peer>\n      <uuid>{}</uuid>\n      <hostname>{}</hostname>\n",
                p.uuid, p.hostname
            );
            if !p.hostnames.is_empty() {
                x += "      <hostnames>\n";
                for h in &p.hostnames {
                    x += &format!("        <hostname>{h}</hostname>\n");
                }
                x += "      </hostnames>\n";
            }
            x += &format!("      <connected>{}</connected>\n", u8::from(p.connected));
            let state = match &p.state {
                PeerState::Local => None,
                PeerState::InCluster => Some((3, "Peer in Cluster".to_string())),
                PeerState::Rejected => Some((6, "Peer Rejected".to_string())),
                PeerState::Other(s) => Some((5, s.clone())),
            };
            if let Some((n, s)) = state {
                x += &format!("      <state>{n}</state>\n      <stateStr>{s}</stateStr>\n");
            }
            x += "    </peer>\n";
        }
        x + "  </peerStatus>\n</cliOutput>\n"
    }

    fn arb_peer() -> impl Strategy<Value = Peer> {
        (
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[a-z][a-z0-9-]{0,20}",
            proptest::collection::vec("[a-z0-9.-]{1,20}", 0..3),
            any::<bool>(),
            prop_oneof![
                Just(PeerState::Local),
                Just(PeerState::InCluster),
                Just(PeerState::Rejected),
                Just(PeerState::Other("Accepted peer request".into())),
                Just(PeerState::Other("Sent and Received peer request".into())),
            ],
        )
            .prop_map(|(uuid, hostname, hostnames, connected, state)| Peer {
                uuid,
                hostname,
                hostnames,
                connected,
                state,
            })
    }

    proptest! {
        // Rendering peers as gluster does and parsing them back gives the
        // same peers.
        #[test]
        fn pool_list_round_trips(peers in proptest::collection::vec(arb_peer(), 0..6)) {
            prop_assert_eq!(parse_pool_list(&render_pool(&peers)).unwrap(), peers);
        }

        // Arbitrary input never panics any parser.
        #[test]
        fn parsers_never_panic(s in ".{0,300}") {
            let _ = parse_pool_list(&s);
            let _ = parse_volume_info(&s);
            let _ = parse_volume_status(&s);
            let _ = parse_heal_info(&s);
            let _ = parse_mounts(&s);
        }
    }
}
