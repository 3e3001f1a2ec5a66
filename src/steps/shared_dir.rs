//! The `SHARED_DIR` layout (PROCEDURE.md step 8): `log/`, `var/` and `ssl/`
//! under the shared path, and `var/.secret_key` created empty only when
//! absent; an existing key (an existing database's) is never touched. With
//! `shared_dir.kind = "existing"` the path comes from a file server that
//! ke2lab does not manage, so the step first proves that every host sees the
//! same file system there: a marker written on the first host must be read
//! back, byte for byte, on every other.

use async_trait::async_trait;
use rand::Rng as _;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::{Cmd, Host};
use crate::topology::SharedDirKind;

/// The directories `setup_stack.sh` requires under `SHARED_DIR`.
pub const LAYOUT: [&str; 3] = ["log", "var", "ssl"];

/// The key file, relative to `SHARED_DIR`.
pub const SECRET_KEY: &str = "var/.secret_key";

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
        // The directory is shared, so the first host's view is everyone's.
        let first = cx.host(0);
        let mut missing = Vec::new();
        for d in LAYOUT {
            let dir = join(&spec.path, d);
            let out = first
                .run(&Cmd::new(["test", "-d"]).arg(dir.clone()))
                .await?;
            if !out.success() {
                missing.push(dir);
            }
        }
        let mut plan = Plan::default();
        if !missing.is_empty() {
            plan.push(
                0,
                format!("create {}", missing.join(" ")),
                Action::Mkdir(missing),
            );
        }
        let key = join(&spec.path, SECRET_KEY);
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
                let key = join(&cx.topology.shared_dir.path, SECRET_KEY);
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
        let spec = &cx.topology.shared_dir;
        let first = cx.host(0);
        for d in LAYOUT {
            let dir = join(&spec.path, d);
            let out = first
                .run(&Cmd::new(["test", "-d"]).arg(dir.clone()))
                .await?;
            if !out.success() {
                return Err(state_err(cx, 0, format!("`{dir}` is not a directory")));
            }
        }
        let key = join(&spec.path, SECRET_KEY);
        if !key_exists(first, &key).await? {
            return Err(state_err(cx, 0, format!("`{key}` does not exist")));
        }
        Ok(())
    }
}
