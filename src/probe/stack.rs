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

pub fn parse_service_ls(text: &str) -> Result<Vec<Service>, ProbeError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| ProbeError::Parse {
                what: "docker service ls".into(),
                detail: e.to_string(),
            })
        })
        .collect()
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
