//! Step 8's input on the manager: the operator's ke2-docker checkout, copied
//! from the machine running ke2lab onto the manager host, file by file, so
//! that `docker compose config` there reads exactly the user's tree. Only
//! files that differ are written; files only on the host (the certificates
//! made there, generated stack files) are left alone.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::files::{Act, want_file};
use super::{Cx, Plan, Planned, Step, StepError};

/// Where the checkout goes on the manager unless the caller says otherwise.
pub const DEFAULT_DEST: &str = "/opt/ke2-docker";

/// One file of the checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// Relative to the checkout, `/`-separated.
    pub path: String,
    pub body: Vec<u8>,
    /// 0755 for files the checkout marks executable, else 0644.
    pub mode: u32,
}

/// A local checkout, read once, in path order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub root: PathBuf,
    pub files: Vec<TreeFile>,
}

/// A checkout that cannot be read: bad input, named by its path.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the ke2-docker checkout at `{path}`: {detail}")]
pub struct TreeError {
    pub path: String,
    pub detail: String,
}

impl Tree {
    /// Reads every regular file under `root` except version-control data.
    /// A checkout without `ke2/cluster/swarm/docker-compose.yml` is refused:
    /// it is not a ke2-docker checkout.
    pub fn read(root: &Path) -> Result<Tree, TreeError> {
        let err = |p: &Path, d: String| TreeError {
            path: p.display().to_string(),
            detail: d,
        };
        let marker = root.join("ke2/cluster/swarm/docker-compose.yml");
        if !marker.is_file() {
            return Err(err(
                root,
                "no `ke2/cluster/swarm/docker-compose.yml` in it".into(),
            ));
        }
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| err(&dir, e.to_string()))?;
            for entry in entries {
                let entry = entry.map_err(|e| err(&dir, e.to_string()))?;
                let p = entry.path();
                let name = entry.file_name();
                if name == ".git" {
                    continue;
                }
                let ft = entry.file_type().map_err(|e| err(&p, e.to_string()))?;
                if ft.is_dir() {
                    stack.push(p);
                } else if ft.is_file() {
                    let body = std::fs::read(&p).map_err(|e| err(&p, e.to_string()))?;
                    let mode = if executable(&entry) { 0o755 } else { 0o644 };
                    let rel = p
                        .strip_prefix(root)
                        .map_err(|e| err(&p, e.to_string()))?
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    files.push(TreeFile {
                        path: rel,
                        body,
                        mode,
                    });
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Tree {
            root: root.to_path_buf(),
            files,
        })
    }
}

#[cfg(unix)]
fn executable(e: &std::fs::DirEntry) -> bool {
    use std::os::unix::fs::PermissionsExt;
    e.metadata()
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn executable(_: &std::fs::DirEntry) -> bool {
    false
}

/// What the stack needs that a checkout may lack, and ke2lab then writes:
/// `rabbitmq.yml` names `scripts/bootstrap-rabbitmq.sh` as a swarm config,
/// and a checkout without the repository's scripts (the pinned data-only
/// tree, for one) has no such file, so `docker stack deploy` would refuse
/// the stack.
pub const BOOTSTRAP_RABBITMQ: &str = "scripts/bootstrap-rabbitmq.sh";

/// ke2lab's `bootstrap-rabbitmq.sh`, doing what ke2-docker's does: the
/// mounted certificates copied where `rabbitmq-ssl.conf` expects them and
/// owned by rabbitmq, the SSL auth mechanism plugin enabled, then the
/// server.
pub fn bootstrap_rabbitmq_sh() -> String {
    "#!/bin/sh\n\
     # Written by ke2lab: the ke2-docker checkout it was given has no\n\
     # scripts/bootstrap-rabbitmq.sh. Same duties as the repository's script.\n\
     set -e\n\
     mkdir -p /etc/rabbitmq/ssl\n\
     for f in local-ca.crt server.crt server.key; do\n\
     \x20   cp \"/run/.kompira_ssl/$f\" /etc/rabbitmq/ssl/\n\
     done\n\
     chown -R rabbitmq:rabbitmq /etc/rabbitmq/ssl\n\
     chmod 0600 /etc/rabbitmq/ssl/server.key\n\
     rabbitmq-plugins enable --offline rabbitmq_auth_mechanism_ssl\n\
     exec rabbitmq-server\n"
        .to_string()
}

/// Copies `tree` to `dest` on the manager host `manager`.
pub struct Checkout {
    pub tree: Tree,
    pub dest: String,
    pub manager: usize,
}

#[async_trait]
impl Step for Checkout {
    type Action = Act;

    fn name(&self) -> &'static str {
        "checkout"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Act>, StepError> {
        let h = cx.host(self.manager);
        let mut plan = Plan::default();
        let mut files = self.tree.files.clone();
        if !files.iter().any(|f| f.path == BOOTSTRAP_RABBITMQ) {
            plan.warnings.push(format!(
                "the checkout `{}` has no `{BOOTSTRAP_RABBITMQ}`, which the rabbitmq service needs: \
                 ke2lab writes its own (SSL files to /etc/rabbitmq/ssl, auth plugin, rabbitmq-server)",
                self.tree.root.display()
            ));
            files.push(TreeFile {
                path: BOOTSTRAP_RABBITMQ.into(),
                body: bootstrap_rabbitmq_sh().into_bytes(),
                mode: 0o755,
            });
        }
        for f in &files {
            let path = format!("{}/{}", self.dest.trim_end_matches('/'), f.path);
            if let Some(act) = want_file(h, &path, &f.body, f.mode, "root").await? {
                plan.push(self.manager, format!("copy `{}` to `{path}`", f.path), act);
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Act>) -> Result<(), StepError> {
        item.action.apply(cx.host(item.host)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_script_is_posix_sh_that_ends_in_the_server() {
        let s = bootstrap_rabbitmq_sh();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.ends_with("exec rabbitmq-server\n"));
        assert!(s.contains("    cp \"/run/.kompira_ssl/$f\" /etc/rabbitmq/ssl/\n"));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn a_directory_that_is_no_checkout_is_refused_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let e = Tree::read(d.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "cannot read the ke2-docker checkout at `{}`: no `ke2/cluster/swarm/docker-compose.yml` in it",
                d.path().display()
            )
        );
    }

    #[test]
    fn path_order_modes_from_the_executable_bit_and_no_vcs_data() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let swarm = d.path().join("ke2/cluster/swarm");
        std::fs::create_dir_all(&swarm).unwrap();
        std::fs::write(swarm.join("docker-compose.yml"), "services: {}\n").unwrap();
        let script = d.path().join("scripts/setup_stack.sh");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        std::fs::write(d.path().join(".git/HEAD"), "ref").unwrap();
        let t = Tree::read(d.path()).unwrap();
        let got: Vec<(&str, u32)> = t.files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
        assert_eq!(
            got,
            [
                ("ke2/cluster/swarm/docker-compose.yml", 0o644),
                ("scripts/setup_stack.sh", 0o755)
            ]
        );
    }
}
