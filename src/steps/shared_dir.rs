//! The `SHARED_DIR` layout (PROCEDURE.md step 8): the stack's three
//! directories (`KOMPIRA_LOG_DIR`, `KOMPIRA_VAR_DIR`, `KOMPIRA_SSL_DIR`:
//! `log/`, `var/` and `ssl/` under the shared path unless the topology's
//! `[stack]` moves them) and `.secret_key` in the var directory, created
//! empty only when absent; an existing key (an existing database's) is never
//! touched. A directory in the shared path is made once, on the first host
//! (every host sees it); a log directory outside it is each host's own and
//! is made on every host, since a container may run on any node. With
//! `shared_dir.kind = "existing"` the path comes from a file server that
//! ke2lab does not manage, so the step first proves that every host sees the
//! same file system there: a marker written on the first host must be read
//! back, byte for byte, on every other.

use async_trait::async_trait;
use rand::Rng as _;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::{Cmd, Host};
use crate::topology::{SharedDirKind, Topology};

/// The key file's name in `KOMPIRA_VAR_DIR`.
pub const SECRET_KEY: &str = ".secret_key";

/// Where the key file of a topology is.
pub fn secret_key(t: &Topology) -> String {
    join(&t.kompira_var_dir(), SECRET_KEY)
}

/// The stack's directories with the hosts that must have them: only the
/// first for a directory in the shared path, every host otherwise.
pub fn layout(t: &Topology) -> Vec<(String, Vec<usize>)> {
    t.kompira_dirs()
        .into_iter()
        .map(|(_, dir)| {
            let hosts = if t.in_shared_dir(&dir) {
                vec![0]
            } else {
                (0..t.hosts.len()).collect()
            };
            (dir, hosts)
        })
        .collect()
}

/// The marker of the same-file-system check, relative to `SHARED_DIR`.
pub const MARKER: &str = ".ke2lab-shared-check";

#[derive(Clone, Debug)]
pub enum Action {
    /// `mkdir -p` of the missing layout directories.
    Mkdir(Vec<String>),
    /// An empty key file, unless one has appeared since the plan.
    CreateKey,
}

/// The layout step.
pub struct SharedDir;

fn join(base: &str, rel: &str) -> String {
    format!("{}/{rel}", base.trim_end_matches('/'))
}

fn state_err(cx: &Cx<'_>, i: usize, message: String) -> StepError {
    StepError::State {
        step: "shared_dir",
        host: cx.name(i).to_string(),
        message,
    }
}

/// Whether the key file exists. Its content is read by the transport and
/// dropped here: only presence matters, and a secret is never kept or shown.
async fn key_exists(host: &dyn Host, path: &str) -> Result<bool, StepError> {
    Ok(host.read_file(path).await?.is_some())
}

async fn is_dir(host: &dyn Host, dir: &str) -> Result<bool, StepError> {
    let out = host
        .run(&Cmd::new(["test", "-d"]).arg(dir.to_string()))
        .await?;
    Ok(out.success())
}

/// Proves that `path` is one file system seen by every host: a random token
/// written on the first host must be read back on each other one. The marker
/// is removed afterwards, whatever the outcome.
pub async fn check_same_filesystem(cx: &Cx<'_>, path: &str) -> Result<(), StepError> {
    each_host(cx, |i, h| async move {
        let out = h
            .run(&Cmd::new(["test", "-d"]).arg(path.to_string()))
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(state_err(
                cx,
                i,
                format!("the shared directory `{path}` does not exist"),
            ))
        }
    })
    .await?;
    let token = format!("{:032x}", rand::rng().random::<u128>());
    let marker = join(path, MARKER);
    let first = cx.host(0);
    first
        .write_file(&marker, token.as_bytes(), 0o644, "root")
        .await?;
    let seen = each_host(cx, |i, h| {
        let (marker, token) = (&marker, &token);
        async move {
            if i == 0 {
                return Ok(());
            }
            match h.read_file(marker).await? {
                Some(body) if body == token.as_bytes() => Ok(()),
                _ => Err(state_err(
                    cx,
                    i,
                    format!(
                        "`{path}` is not the file system of `{}`: a marker written there \
                         (`{marker}`) is not seen here; mount the shared directory on every host",
                        cx.name(0)
                    ),
                )),
            }
        }
    })
    .await;
    Cmd::new(["rm", "-f"])
        .arg(marker.clone())
        .check(first)
        .await?;
    seen.map(drop)
}

#[async_trait]
impl Step for SharedDir {
    type Action = Action;

    fn name(&self) -> &'static str {
        "shared_dir"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Action>, StepError> {
        let spec = &cx.topology.shared_dir;
        if spec.kind == SharedDirKind::Existing {
            check_same_filesystem(cx, &spec.path).await?;
        }
        // A directory in the shared path is one for every host, so the
        // first host's view is everyone's.
        let first = cx.host(0);
        let mut missing: Vec<Vec<String>> = vec![Vec::new(); cx.hosts.len()];
        for (dir, hosts) in layout(cx.topology) {
            for i in hosts {
                if !is_dir(cx.host(i), &dir).await? {
                    missing[i].push(dir.clone());
                }
            }
        }
        let mut plan = Plan::default();
        for (i, dirs) in missing.into_iter().enumerate() {
            if !dirs.is_empty() {
                plan.push(i, format!("create {}", dirs.join(" ")), Action::Mkdir(dirs));
            }
        }
        let key = secret_key(cx.topology);
        if !key_exists(first, &key).await? {
            plan.push(0, format!("create an empty `{key}`"), Action::CreateKey);
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Action>) -> Result<(), StepError> {
        let host = cx.host(item.host);
        match &item.action {
            Action::Mkdir(dirs) => {
                dirs.iter()
                    .fold(Cmd::new(["mkdir", "-p"]), |c, d| c.arg(d.clone()))
                    .check(host)
                    .await?;
            }
            Action::CreateKey => {
                let key = secret_key(cx.topology);
                // Checked again right before writing: a key that appeared
                // since the plan (an operator copying an existing database's)
                // must win.
                if !key_exists(host, &key).await? {
                    // 0600: the file is a secret; Kompira's containers run
                    // as root, which is also what writes a key into it.
                    host.write_file(&key, b"", 0o600, "root").await?;
                }
            }
        }
        Ok(())
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        for (dir, hosts) in layout(cx.topology) {
            for i in hosts {
                if !is_dir(cx.host(i), &dir).await? {
                    return Err(state_err(cx, i, format!("`{dir}` is not a directory")));
                }
            }
        }
        let key = secret_key(cx.topology);
        if !key_exists(cx.host(0), &key).await? {
            return Err(state_err(cx, 0, format!("`{key}` does not exist")));
        }
        Ok(())
    }
}
