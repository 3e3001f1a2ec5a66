//! The ke2 stack as the swarm reports it: `docker service ls` of the
//! stack's namespace as JSON lines, and whether the hosts' kernels have IPVS
//! (swarm service VIPs and the ingress mesh need it).

use serde::Deserialize;

use super::ProbeError;
use crate::host::{Cmd, Host};

/// One service of `docker service ls --format '{{json .}}'`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Mode")]
    pub mode: String,
    /// `running/desired`, sometimes followed by ` (max 1 per node)`.
    #[serde(rename = "Replicas")]
    pub replicas: String,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Ports", default)]
    pub ports: String,
}

impl Service {
    /// Running and desired tasks, from `Replicas`.
    pub fn counts(&self) -> Option<(u32, u32)> {
        let head = self.replicas.split_whitespace().next()?;
        let (r, d) = head.split_once('/')?;
        Some((r.parse().ok()?, d.parse().ok()?))
    }

    /// Every desired task runs (and at least one is desired).
    pub fn converged(&self) -> bool {
        matches!(self.counts(), Some((r, d)) if d > 0 && r == d)
    }
}

/// One JSON object per line, as `--format '{{json .}}'` prints them.
fn json_lines<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<Vec<T>, ProbeError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| ProbeError::Parse {
                what: what.into(),
                detail: e.to_string(),
            })
        })
        .collect()
}

pub fn parse_service_ls(text: &str) -> Result<Vec<Service>, ProbeError> {
    json_lines(text, "docker service ls")
}

/// The services of stack `name` (the label `docker stack deploy` sets).
pub fn service_ls_cmd(stack: &str) -> Cmd {
    Cmd::new(["docker", "service", "ls", "--filter"])
        .arg(format!("label=com.docker.stack.namespace={stack}"))
        .args_from(["--format", "{{json .}}"])
}

pub async fn services(host: &dyn Host, stack: &str) -> Result<Vec<Service>, ProbeError> {
    let out = service_ls_cmd(stack).check(host).await?;
    parse_service_ls(&out.stdout_lossy())
}

/// A service's endpoint as `docker service inspect --format
/// '{{json .Spec.EndpointSpec}}'` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct EndpointSpec {
    /// `vip` (also when absent) or `dnsrr`.
    #[serde(rename = "Mode", default)]
    pub mode: Option<String>,
    #[serde(rename = "Ports", default)]
    pub ports: Option<Vec<PortSpec>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PortSpec {
    #[serde(rename = "Protocol", default)]
    pub protocol: Option<String>,
    #[serde(rename = "TargetPort")]
    pub target: u16,
    #[serde(rename = "PublishedPort", default)]
    pub published: Option<u16>,
    /// `ingress` (also when absent) or `host`.
    #[serde(rename = "PublishMode", default)]
    pub publish_mode: Option<String>,
}

impl EndpointSpec {
    pub fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or("vip")
    }
    pub fn ports(&self) -> &[PortSpec] {
        self.ports.as_deref().unwrap_or_default()
    }
}

impl PortSpec {
    pub fn publish_mode(&self) -> &str {
        self.publish_mode.as_deref().unwrap_or("ingress")
    }
}

pub fn parse_endpoint_spec(text: &str) -> Result<EndpointSpec, ProbeError> {
    let t = text.trim();
    if t == "null" || t.is_empty() {
        return Ok(EndpointSpec::default());
    }
    serde_json::from_str(t).map_err(|e| ProbeError::Parse {
        what: "docker service inspect (EndpointSpec)".into(),
        detail: e.to_string(),
    })
}

/// The endpoint spec of service `service` (full name, `ke2_nginx`).
pub async fn endpoint_spec(host: &dyn Host, service: &str) -> Result<EndpointSpec, ProbeError> {
    let out = Cmd::new([
        "docker",
        "service",
        "inspect",
        "--format",
        "{{json .Spec.EndpointSpec}}",
    ])
    .arg(service)
    .check(host)
    .await?;
    parse_endpoint_spec(&out.stdout_lossy())
}

/// Soft and hard values of one line of `/proc/<pid>/limits`; `None` is
/// `unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// `/proc/<pid>/limits` by limit name (`Max open files`). The kernel
/// prints the name in a 25-column field, then soft, hard and units.
pub fn parse_proc_limits(
    text: &str,
) -> Result<std::collections::BTreeMap<String, Limit>, ProbeError> {
    let bad = |l: &str| ProbeError::Parse {
        what: "/proc/self/limits".into(),
        detail: format!("line `{l}`"),
    };
    let value = |s: &str, l: &str| -> Result<Option<u64>, ProbeError> {
        if s == "unlimited" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad(l))
        }
    };
    let mut out = std::collections::BTreeMap::new();
    for l in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (name, rest) = l.split_at(l.len().min(25));
        let mut f = rest.split_whitespace();
        let (Some(soft), Some(hard)) = (f.next(), f.next()) else {
            return Err(bad(l));
        };
        out.insert(
            name.trim().to_string(),
            Limit {
                soft: value(soft, l)?,
                hard: value(hard, l)?,
            },
        );
    }
    Ok(out)
}

/// The hard `nofile` limit a host's processes have (what its engine can
/// grant a container at most); `None` when unlimited.
pub async fn hard_nofile(host: &dyn Host) -> Result<Option<u64>, ProbeError> {
    let out = Cmd::new(["cat", "/proc/self/limits"]).check(host).await?;
    let limits = parse_proc_limits(&out.stdout_lossy())?;
    Ok(limits
        .get("Max open files")
        .ok_or_else(|| ProbeError::Parse {
            what: "/proc/self/limits".into(),
            detail: "no `Max open files` line".into(),
        })?
        .hard)
}

/// `rabbitmqctl cluster_status --formatter json` (the field used).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RabbitmqCluster {
    pub running_nodes: Vec<String>,
}

pub fn parse_rabbitmq_cluster(text: &str) -> Result<RabbitmqCluster, ProbeError> {
    serde_json::from_str(text.trim()).map_err(|e| ProbeError::Parse {
        what: "rabbitmqctl cluster_status --formatter json".into(),
        detail: e.to_string(),
    })
}

/// The RabbitMQ cluster as the stack's rabbitmq task on `host` sees it
/// (`rabbitmqctl` run in that task's container).
pub async fn rabbitmq_cluster(host: &dyn Host, stack: &str) -> Result<RabbitmqCluster, ProbeError> {
    let out = Cmd::sh(format!(
        "c=$(docker ps -q --filter label=com.docker.swarm.service.name={stack}_rabbitmq | head -n1) \
         && [ -n \"$c\" ] && docker exec \"$c\" rabbitmqctl cluster_status --formatter json"
    ))
    .check(host)
    .await?;
    parse_rabbitmq_cluster(&out.stdout_lossy())
}

/// One line of `docker ps --format '{{json .}}'` (the fields used).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Container {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Names")]
    pub names: String,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "State", default)]
    pub state: String,
}

pub fn parse_ps(text: &str) -> Result<Vec<Container>, ProbeError> {
    json_lines(text, "docker ps")
}

/// The containers (running or not) of stack `stack` on one host, by name.
pub async fn stack_containers(host: &dyn Host, stack: &str) -> Result<Vec<String>, ProbeError> {
    let out = Cmd::new(["docker", "ps", "--all", "--filter"])
        .arg(format!("label=com.docker.stack.namespace={stack}"))
        .args_from(["--format", "{{json .}}"])
        .check(host)
        .await?;
    Ok(parse_ps(&out.stdout_lossy())?
        .into_iter()
        .map(|c| c.names)
        .collect())
}

/// One task of `docker service ps --format '{{json .}}'` (the fields used):
/// where the swarm placed it and what it runs as.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    /// `<service>.<slot>`.
    #[serde(rename = "Name")]
    pub name: String,
    /// The node's host name.
    #[serde(rename = "Node")]
    pub node: String,
    #[serde(rename = "DesiredState")]
    pub desired_state: String,
    /// `Running 2 minutes ago`, `Shutdown 5 seconds ago`, …
    #[serde(rename = "CurrentState")]
    pub current_state: String,
    #[serde(rename = "Error", default)]
    pub error: String,
}

impl Task {
    /// The swarm wants it running and it runs.
    pub fn is_running(&self) -> bool {
        self.desired_state == "Running" && self.current_state.starts_with("Running")
    }
}

pub fn parse_service_ps(text: &str) -> Result<Vec<Task>, ProbeError> {
    json_lines(text, "docker service ps")
}

/// The tasks of service `service` (full name, `ke2_nginx`) that the swarm
/// wants running, asked of a manager; full task ids (no truncation), so a
/// task's container can be found by its label.
pub async fn tasks(host: &dyn Host, service: &str) -> Result<Vec<Task>, ProbeError> {
    let out = Cmd::new(["docker", "service", "ps", "--no-trunc"])
        .args_from(["--filter", "desired-state=running"])
        .args_from(["--format", "{{json .}}"])
        .arg(service)
        .check(host)
        .await?;
    parse_service_ps(&out.stdout_lossy())
}

/// The running containers of service `service` on one host (its engine's
/// view, by the label swarm sets on a task's container).
pub async fn service_containers(
    host: &dyn Host,
    service: &str,
) -> Result<Vec<Container>, ProbeError> {
    let out = Cmd::new(["docker", "ps", "--filter"])
        .arg(format!("label=com.docker.swarm.service.name={service}"))
        .args_from(["--format", "{{json .}}"])
        .check(host)
        .await?;
    parse_ps(&out.stdout_lossy())
}

/// One mount of `docker inspect --format '{{json .Mounts}}'`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ContainerMount {
    /// `bind`, `volume`, `tmpfs`, …
    #[serde(rename = "Type")]
    pub kind: String,
    /// The host path of a bind mount (a volume's directory for a volume).
    #[serde(rename = "Source", default)]
    pub source: String,
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RW", default)]
    pub rw: bool,
}

pub fn parse_mounts(text: &str) -> Result<Vec<ContainerMount>, ProbeError> {
    let t = text.trim();
    if t == "null" || t.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(t).map_err(|e| ProbeError::Parse {
        what: "docker inspect (Mounts)".into(),
        detail: e.to_string(),
    })
}

/// The mounts of container `container` on `host`.
pub async fn container_mounts(
    host: &dyn Host,
    container: &str,
) -> Result<Vec<ContainerMount>, ProbeError> {
    let out = Cmd::new(["docker", "inspect", "--format", "{{json .Mounts}}"])
        .arg(container)
        .check(host)
        .await?;
    parse_mounts(&out.stdout_lossy())
}

/// Exit 0 when the kernel has IPVS: loaded (`/proc/net/ip_vs`) or loadable
/// (`modinfo`), as dockerd would load it for a service VIP.
pub fn ipvs_cmd() -> Cmd {
    Cmd::sh("test -e /proc/net/ip_vs || modinfo ip_vs >/dev/null 2>&1")
}

pub async fn has_ipvs(host: &dyn Host) -> Result<bool, ProbeError> {
    Ok(host.run(&ipvs_cmd()).await?.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_spec_of_an_adapted_and_a_default_service() {
        let e = parse_endpoint_spec(
            r#"{"Mode":"dnsrr","Ports":[{"Protocol":"tcp","TargetPort":443,"PublishedPort":443,"PublishMode":"host"}]}"#,
        )
        .unwrap();
        assert_eq!(e.mode(), "dnsrr");
        assert_eq!(e.ports()[0].publish_mode(), "host");
        assert_eq!(
            (e.ports()[0].target, e.ports()[0].published),
            (443, Some(443))
        );
        let d = parse_endpoint_spec("{}\n").unwrap();
        assert_eq!((d.mode(), d.ports().len()), ("vip", 0));
        assert_eq!(
            parse_endpoint_spec("null").unwrap(),
            EndpointSpec::default()
        );
        assert!(parse_endpoint_spec("{\"Mode\":").is_err());
    }

    #[test]
    fn proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 20000                files     \n\
                    Max nice priority         0                    0                    \n";
        let l = parse_proc_limits(text).unwrap();
        assert_eq!(
            l["Max open files"],
            Limit {
                soft: Some(1024),
                hard: Some(20000)
            }
        );
        assert_eq!(l["Max cpu time"].hard, None);
        assert_eq!(l["Max nice priority"].soft, Some(0));
        assert!(parse_proc_limits("h\nMax open files            x y\n").is_err());
    }

    #[test]
    fn rabbitmq_cluster_status() {
        let c = parse_rabbitmq_cluster(
            r#"{"disk_nodes":["rabbit@mq-a","rabbit@mq-b"],"running_nodes":["rabbit@mq-b","rabbit@mq-a"],"versions":{}}"#,
        )
        .unwrap();
        assert_eq!(c.running_nodes, vec!["rabbit@mq-b", "rabbit@mq-a"]);
        assert!(parse_rabbitmq_cluster("Error: unable to perform an operation").is_err());
    }

    #[test]
    fn ps_lines() {
        let c = parse_ps(
            r#"{"ID":"0a1b","Image":"nginx:1","Names":"ke2_nginx.x.y","State":"running"}"#,
        )
        .unwrap();
        assert_eq!(c[0].names, "ke2_nginx.x.y");
        assert_eq!(c[0].state, "running");
        assert!(parse_ps("").unwrap().is_empty());
    }

    // Captured from a lab (engine 26.1, 2026-12-01): `docker service ps
    // --no-trunc --filter desired-state=running --format '{{json .}}'
    // ke2_nginx` with two replicas on three nodes; the third line is the
    // first with its task shut down (hand-edited).
    const SERVICE_PS: &str = r#"{"CurrentState":"Running 6 minutes ago","DesiredState":"Running","Error":"","ID":"p8b6z1p17obhwxvmrv50dam3f","Image":"registry.hub.docker.com/library/nginx:1.27-alpine","Name":"ke2_nginx.1","Node":"ke2-server2","Ports":"*:80-\u003e80/tcp,*:443-\u003e443/tcp"}
{"CurrentState":"Running 6 minutes ago","DesiredState":"Running","Error":"","ID":"k6x35bz81nhn0rgf1c9dahpvh","Image":"registry.hub.docker.com/library/nginx:1.27-alpine","Name":"ke2_nginx.2","Node":"ke2-server1","Ports":"*:443-\u003e443/tcp,*:80-\u003e80/tcp"}
{"CurrentState":"Shutdown 2 seconds ago","DesiredState":"Shutdown","Error":"","ID":"p8b6z1p17obhwxvmrv50dam3f","Image":"registry.hub.docker.com/library/nginx:1.27-alpine","Name":"ke2_nginx.1","Node":"ke2-server2","Ports":""}
"#;

    #[test]
    fn service_ps_tasks_and_their_nodes() {
        let t = parse_service_ps(SERVICE_PS).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].name.as_str(), t[0].node.as_str()),
            ("ke2_nginx.1", "ke2-server2")
        );
        assert_eq!(t[1].id, "k6x35bz81nhn0rgf1c9dahpvh");
        assert!(t[0].is_running() && t[1].is_running());
        assert!(!t[2].is_running());
        assert!(parse_service_ps("").unwrap().is_empty());
        assert!(parse_service_ps("{\"ID\":").is_err());
    }

    // Captured from the same lab: `docker inspect --format '{{json
    // .Mounts}}'` of a ke2_kompira container with `KOMPIRA_LOG_DIR` on the
    // node's own disk.
    const MOUNTS: &str = r#"[{"Type":"bind","Source":"/var/log/kompira","Destination":"/var/log/kompira","Mode":"","RW":true,"Propagation":"rprivate"},{"Type":"bind","Source":"/mnt/gluster/var","Destination":"/var/opt/kompira","Mode":"","RW":true,"Propagation":"rprivate"}]
"#;

    #[test]
    fn container_mounts_by_destination() {
        let m = parse_mounts(MOUNTS).unwrap();
        assert_eq!(
            m[0],
            ContainerMount {
                kind: "bind".into(),
                source: "/var/log/kompira".into(),
                destination: "/var/log/kompira".into(),
                rw: true,
            }
        );
        assert_eq!(m[1].source, "/mnt/gluster/var");
        assert!(parse_mounts("[]").unwrap().is_empty());
        assert!(parse_mounts("null\n").unwrap().is_empty());
        assert!(parse_mounts("[{").is_err());
    }

    // The shape `docker service ls --format '{{json .}}'` prints (26.1).
    const SAMPLE: &str = r#"{"ID":"k2u0w1xq9r7s","Image":"kompira.azurecr.io/kompira-enterprise:2.0.2","Mode":"replicated","Name":"ke2_kompira","Ports":"","Replicas":"3/3 (max 1 per node)"}
{"ID":"p0v9a8b7c6d5","Image":"registry.hub.docker.com/library/redis:7.2","Mode":"replicated","Name":"ke2_redis","Ports":"","Replicas":"0/1"}
{"ID":"z9y8x7w6v5u4","Image":"nginx:1.27","Mode":"replicated","Name":"ke2_nginx","Ports":"*:80->80/tcp, *:443->443/tcp","Replicas":"2/3 (max 1 per node)"}
"#;

    #[test]
    fn replicas_running_and_desired() {
        let s = parse_service_ls(SAMPLE).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].counts(), Some((3, 3)));
        assert!(s[0].converged());
        assert_eq!(s[1].counts(), Some((0, 1)));
        assert!(!s[1].converged());
        assert_eq!(s[2].counts(), Some((2, 3)));
        assert_eq!(s[2].ports, "*:80->80/tcp, *:443->443/tcp");
        assert!(parse_service_ls("not json").is_err());
        let zero = Service {
            replicas: "0/0".into(),
            ..s[0].clone()
        };
        assert!(!zero.converged(), "nothing desired is not converged");
    }
}
