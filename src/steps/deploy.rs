//! `docker stack deploy -c docker-swarm.yml ke2` on the manager, after
//! `SetupStack` wrote the stack file. Where a host's kernel lacks IPVS,
//! swarm service VIPs and the ingress mesh cannot work, so the stack is
//! deployed with a visible adaptation (DNS round robin, ports published on
//! the nodes), reported as warnings; where every host has IPVS the file is
//! deployed unmodified. What was deployed is kept beside the stack file, so
//! a re-run deploys again only when the stack changed or services are gone.

use async_trait::async_trait;

use super::stack::{STACK_FILE, StackOptions};
use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::Cmd;
use crate::probe::stack::{hard_nofile, has_ipvs, services};
use crate::render::stack::{adapt_without_ipvs, cap_ulimit};

/// The stack's name (`docker stack deploy … ke2`).
pub const STACK_NAME: &str = "ke2";
/// What was deployed, beside the stack file.
pub const DEPLOYED_FILE: &str = "docker-swarm.deployed.yml";

pub struct Deploy {
    pub opts: StackOptions,
}

#[derive(Clone, Debug)]
pub struct DeployAction {
    /// The stack file as deployed (adapted or not).
    pub body: Vec<u8>,
}

fn state(cx: &Cx<'_>, i: usize, message: String) -> StepError {
    super::stack::state(cx, "deploy", i, message)
}

impl Deploy {
    fn paths(&self) -> (String, String) {
        let dir = self.opts.swarm_dir();
        (
            format!("{dir}/{STACK_FILE}"),
            format!("{dir}/{DEPLOYED_FILE}"),
        )
    }
}

#[async_trait]
impl Step for Deploy {
    type Action = DeployAction;

    fn name(&self) -> &'static str {
        "deploy"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<DeployAction>, StepError> {
        let m = self.opts.manager;
        let h = cx.host(m);
        let (stack_path, deployed_path) = self.paths();
        let stack = h.read_file(&stack_path).await?.ok_or_else(|| {
            state(
                cx,
                m,
                format!("no `{stack_path}`: the stack set-up must run first"),
            )
        })?;
        let mut plan = Plan::default();
        let ipvs = each_host(cx, |_, h| async move { Ok(has_ipvs(h).await?) }).await?;
        let body = if ipvs.iter().all(|x| *x) {
            stack
        } else {
            let without: Vec<&str> = ipvs
                .iter()
                .enumerate()
                .filter(|(_, x)| !**x)
                .map(|(i, _)| cx.name(i))
                .collect();
            let text = String::from_utf8_lossy(&stack);
            let (adapted, changes) = adapt_without_ipvs(&text)
                .map_err(|e| state(cx, m, format!("cannot adapt `{stack_path}`: {e}")))?;
            plan.warnings.push(format!(
                "no IPVS in the kernel of {}: swarm service VIPs and the ingress mesh cannot work there; \
                 deploying with this adaptation: {}",
                without.join(", "),
                changes.join("; ")
            ));
            adapted.into_bytes()
        };
        // Hosts whose engine cannot grant the stack's open-file limit (no
        // CAP_SYS_RESOURCE, as in the lab's container hosts): lowered to
        // what every host can grant, visibly.
        let hard = each_host(cx, |_, h| async move { Ok(hard_nofile(h).await?) }).await?;
        let body = match hard.iter().flatten().min() {
            Some(&max) => {
                let text = String::from_utf8_lossy(&body);
                let (capped, changes) = cap_ulimit(&text, "nofile", max)
                    .map_err(|e| state(cx, m, format!("cannot adapt `{stack_path}`: {e}")))?;
                if !changes.is_empty() {
                    plan.warnings.push(format!(
                        "the hosts' hard open-file limit is {max}: deploying with this adaptation: {}",
                        changes.join("; ")
                    ));
                }
                capped.into_bytes()
            }
            None => body,
        };
        let deployed = h.read_file(&deployed_path).await?;
        let running = services(h, STACK_NAME).await?;
        if deployed.as_deref() != Some(body.as_slice()) || running.is_empty() {
            plan.push(
                m,
                format!("deploy stack `{STACK_NAME}` from `{deployed_path}`"),
                DeployAction { body },
            );
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<DeployAction>) -> Result<(), StepError> {
        let h = cx.host(item.host);
        let (_, deployed_path) = self.paths();
        // Mode 0600: the stack file carries DATABASE_URL with its password.
        h.write_file(&deployed_path, &item.action.body, 0o600, "root")
            .await?;
        Cmd::new(["docker", "stack", "deploy", "-c"])
            .arg(deployed_path)
            .arg(STACK_NAME)
            .check(h)
            .await?;
        Ok(())
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let m = self.opts.manager;
        let s = services(cx.host(m), STACK_NAME).await?;
        if s.is_empty() {
            return Err(state(
                cx,
                m,
                format!("stack `{STACK_NAME}` has no services"),
            ));
        }
        Ok(())
    }
}
