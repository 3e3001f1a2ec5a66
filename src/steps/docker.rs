//! Step 1: the Docker engine (24.0 or newer) and the compose plugin (2.24.6
//! or newer) on every host. rhel9 hosts get the document's dnf/systemctl
//! commands; Debian hosts get the distribution's packages. Lab hosts carry the
//! engine in their image, so there the step only verifies.

use async_trait::async_trait;
use serde::Deserialize;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::{Cmd, Host};
use crate::platform::Platform;

pub const MIN_ENGINE: (u32, u32, u32) = (24, 0, 0);
pub const MIN_COMPOSE: (u32, u32, u32) = (2, 24, 6);

/// What `docker version` and `docker compose version` say on one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineState {
    /// `None`: the `docker` command is missing.
    pub client: Option<String>,
    /// `None`: no daemon answered.
    pub server: Option<String>,
    pub compose: Option<String>,
}

#[derive(Deserialize)]
struct VersionJson {
    #[serde(rename = "Client")]
    client: Option<Part>,
    #[serde(rename = "Server")]
    server: Option<Part>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "Version")]
    version: String,
}

/// Parses `docker version --format '{{json .}}'`, which prints the client part
/// even when the daemon is down (then `Server` is null and the exit is 1).
pub fn parse_version(json: &str) -> (Option<String>, Option<String>) {
    match serde_json::from_str::<VersionJson>(json.trim()) {
        Ok(v) => (v.client.map(|p| p.version), v.server.map(|p| p.version)),
        Err(_) => (None, None),
    }
}

/// `26.1.5+dfsg1` → (26, 1, 5); missing parts are 0.
pub fn version_triple(v: &str) -> (u32, u32, u32) {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

pub async fn engine_state(host: &dyn Host) -> Result<EngineState, StepError> {
    let v = host
        .run(&Cmd::new(["docker", "version", "--format", "{{json .}}"]))
        .await?;
    // 127 from a shell, 126 from `docker exec` (the lab): no such program.
    let (client, server) = if v.status == 127 || v.status == 126 {
        (None, None)
    } else {
        parse_version(&v.stdout_lossy())
    };
    let compose = if client.is_some() {
        let c = host
            .run(&Cmd::new(["docker", "compose", "version", "--short"]))
            .await?;
        c.success().then(|| c.stdout_lossy().trim().to_string())
    } else {
        None
    };
    Ok(EngineState {
        client,
        server,
        compose,
    })
}

#[derive(Clone, Debug)]
pub enum Action {
    Install(Vec<Cmd>),
    Start(Cmd),
}

/// Step 1 of the procedure.
pub struct DockerEngine;

fn too_old(cx: &Cx<'_>, i: usize, what: &str, have: &str, min: (u32, u32, u32)) -> StepError {
    StepError::State {
        step: "docker",
        host: cx.name(i).to_string(),
        message: format!(
            "{what} `{have}` is older than the required `{}.{}.{}`",
            min.0, min.1, min.2
        ),
    }
}

#[async_trait]
impl Step for DockerEngine {
    type Action = Action;

    fn name(&self) -> &'static str {
        "docker"
    }

    /// Installs packages and starts the engine, which writes the
    /// host's firewall rules as it starts.
    fn host_wide(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Action>, StepError> {
        let states = each_host(cx, |_, h| engine_state(h)).await?;
        let mut plan = Plan::default();
        for (i, st) in states.iter().enumerate() {
            let platform: Platform = cx.topology.hosts[i].platform;
            if st.client.is_none() || st.compose.is_none() {
                plan.push(
                    i,
                    format!("install the docker engine and compose plugin ({platform})"),
                    Action::Install(platform.docker_install()),
                );
            }
            if st.server.is_none() {
                plan.push(
                    i,
                    "enable and start the docker service",
                    Action::Start(platform.start_service("docker")),
                );
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Action>) -> Result<(), StepError> {
        let host = cx.host(item.host);
        match &item.action {
            Action::Install(cmds) => {
                for c in cmds {
                    c.check(host).await?;
                }
            }
            Action::Start(c) => {
                c.check(host).await?;
            }
        }
        Ok(())
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let states = each_host(cx, |_, h| engine_state(h)).await?;
        for (i, st) in states.iter().enumerate() {
            let Some(server) = &st.server else {
                return Err(StepError::State {
                    step: "docker",
                    host: cx.name(i).to_string(),
                    message: "the docker daemon does not answer `docker version`".into(),
                });
            };
            if version_triple(server) < MIN_ENGINE {
                return Err(too_old(cx, i, "docker engine", server, MIN_ENGINE));
            }
            let compose = st.compose.as_deref().unwrap_or("none");
            if version_triple(compose) < MIN_COMPOSE {
                return Err(too_old(cx, i, "docker compose", compose, MIN_COMPOSE));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version_triple("26.1.5+dfsg1"), (26, 1, 5));
        assert_eq!(version_triple("v2.26.1"), (2, 26, 1));
        assert_eq!(version_triple("24"), (24, 0, 0));
        assert!(version_triple("20.10.24+dfsg1") < MIN_ENGINE);
    }

    #[test]
    fn version_json_with_and_without_server() {
        let up = r#"{"Client":{"Version":"26.1.5+dfsg1"},"Server":{"Version":"26.1.5+dfsg1"}}"#;
        assert_eq!(
            parse_version(up),
            (Some("26.1.5+dfsg1".into()), Some("26.1.5+dfsg1".into()))
        );
        let down = r#"{"Client":{"Version":"26.1.5+dfsg1"},"Server":null}"#;
        assert_eq!(parse_version(down), (Some("26.1.5+dfsg1".into()), None));
        assert_eq!(parse_version(""), (None, None));
    }
}
