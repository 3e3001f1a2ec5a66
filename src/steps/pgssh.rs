//! Step 6 (what `setup_pgssh.sh` does), without any prompt: every host's
//! postgres user gets the key pair `id_rsa_pgpool`, and every public key is
//! in every host's `authorized_keys` exactly once. Keys are tagged with the
//! comment `ke2lab:<host>`, so a re-run replaces a host's older key instead
//! of adding another.

use async_trait::async_trait;

use super::files::{Act, want_dir};
use super::{Cx, Plan, Planned, Step, StepError, each_host, plan_hosts};
use crate::host::{Cmd, Host};
use crate::layout::Layout;
use crate::topology::Platform;

#[derive(Clone, Debug)]
pub enum SshAction {
    Act(Act),
    /// Generate the host's key pair.
    KeyGen,
    /// Rewrite `authorized_keys` from every host's public key (read at apply
    /// time, after any key generation).
    Authorize,
}

/// The key pairs (`pgssh-keys`), then the trust between hosts (`pgssh`).
pub struct PgSshKeys;
pub struct PgSsh;

const TAG: &str = "ke2lab:";

fn pubkey_path(l: &Layout) -> String {
    format!("{}.pub", l.ssh_key())
}

fn authorized_path(l: &Layout) -> String {
    l.in_home(".ssh/authorized_keys")
}

/// `authorized_keys` with the cluster's keys: lines tagged for a cluster host
/// or equal to one of the keys are replaced by the current set; others kept.
pub fn authorized_keys(current: &str, keys: &[String], hosts: &[String]) -> String {
    let key_body = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let bodies: Vec<String> = keys.iter().map(|k| key_body(k)).collect();
    let mut out: Vec<String> = current
        .lines()
        .filter(|l| {
            let tagged = hosts
                .iter()
                .any(|h| l.split_whitespace().last() == Some(&format!("{TAG}{h}")));
            !tagged && !bodies.contains(&key_body(l))
        })
        .map(str::to_string)
        .collect();
    out.extend(keys.iter().map(|k| k.trim().to_string()));
    let mut s = out.join("\n");
    s.push('\n');
    s
}

async fn read_pubkeys(cx: &Cx<'_>) -> Result<Vec<Option<String>>, StepError> {
    each_host(cx, |i, h| async move {
        let l = Layout::of(cx.topology.hosts[i].platform);
        Ok(h.read_file(&pubkey_path(l))
            .await?
            .map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    })
    .await
}

#[async_trait]
impl Step for PgSshKeys {
    type Action = SshAction;

    fn name(&self) -> &'static str {
        "pgssh-keys"
    }

    fn hosts_independent(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<SshAction>, StepError> {
        plan_hosts(cx, |i| async move {
            let mut plan = Plan::default();
            let l = Layout::of(cx.topology.hosts[i].platform);
            let dir = l.in_home(".ssh");
            if let Some(a) = want_dir(cx.host(i), &dir, "postgres:postgres", 0o700).await? {
                plan.push(i, format!("create `{dir}`"), SshAction::Act(a));
            }
            if cx.host(i).read_file(&pubkey_path(l)).await?.is_none() {
                plan.push(
                    i,
                    "generate the postgres key pair `id_rsa_pgpool`",
                    SshAction::KeyGen,
                );
            }
            Ok(plan)
        })
        .await
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<SshAction>) -> Result<(), StepError> {
        PgSsh.apply(cx, item).await
    }
}

#[async_trait]
impl Step for PgSsh {
    type Action = SshAction;

    fn name(&self) -> &'static str {
        "pgssh"
    }

    fn hosts_independent(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<SshAction>, StepError> {
        let keys = read_pubkeys(cx).await?;
        let names: Vec<String> = cx.topology.hosts.iter().map(|h| h.name.clone()).collect();
        let keys: Vec<String> = keys.into_iter().flatten().collect();
        let (keys, names) = (&keys, &names);
        plan_hosts(cx, |i| async move {
            let mut plan = Plan::default();
            let l = Layout::of(cx.topology.hosts[i].platform);
            let cur = cx
                .host(i)
                .read_file(&authorized_path(l))
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if cur
                .as_deref()
                .is_none_or(|c| authorized_keys(c, keys, names) != c)
            {
                plan.push(
                    i,
                    "authorize every host's postgres key",
                    SshAction::Authorize,
                );
            }
            Ok(plan)
        })
        .await
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<SshAction>) -> Result<(), StepError> {
        let h = cx.host(item.host);
        let spec = &cx.topology.hosts[item.host];
        let l = Layout::of(spec.platform);
        match &item.action {
            SshAction::Act(a) => a.apply(h).await,
            SshAction::KeyGen => {
                Cmd::new([
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "rsa",
                    "-b",
                    "3072",
                    "-N",
                    "",
                    "-C",
                ])
                .arg(format!("{TAG}{}", spec.name))
                .arg("-f")
                .arg(l.ssh_key())
                .user("postgres")
                .check(h)
                .await?;
                Ok(())
            }
            SshAction::Authorize => {
                let keys: Vec<String> = read_pubkeys(cx).await?.into_iter().flatten().collect();
                let names: Vec<String> = cx.topology.hosts.iter().map(|h| h.name.clone()).collect();
                let path = authorized_path(l);
                let cur = h
                    .read_file(&path)
                    .await?
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                h.write_file(
                    &path,
                    authorized_keys(&cur, &keys, &names).as_bytes(),
                    0o600,
                    "postgres:postgres",
                )
                .await?;
                if spec.platform == Platform::Rhel9 {
                    // SELinux labels for files sshd reads.
                    Cmd::new(["restorecon", "-R"])
                        .arg(l.in_home(".ssh"))
                        .check(h)
                        .await?;
                }
                Ok(())
            }
        }
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        // Every postgres user reaches every host (itself included) without a
        // prompt: what failover, follow-primary and recovery need.
        let names: Vec<String> = cx.topology.hosts.iter().map(|h| h.name.clone()).collect();
        each_host(cx, |i, h: &dyn Host| {
            let names = names.clone();
            async move {
                let l = Layout::of(cx.topology.hosts[i].platform);
                futures_util::future::try_join_all(names.iter().map(|n| {
                    Cmd::new(["ssh", "-i"])
                        .arg(l.ssh_key())
                        .args_from([
                            "-o",
                            "StrictHostKeyChecking=no",
                            "-o",
                            "UserKnownHostsFile=/dev/null",
                            "-o",
                            "BatchMode=yes",
                            "-o",
                            "ConnectTimeout=5",
                            "-o",
                            "LogLevel=ERROR",
                        ])
                        .arg(format!("postgres@{n}"))
                        .arg("true")
                        .user("postgres")
                        .check_owned(h)
                }))
                .await?;
                Ok(())
            }
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_replace_older_ones_and_keep_others() {
        let hosts = vec!["a".to_string(), "b".to_string()];
        let keys = vec![
            "ssh-rsa AAA1 ke2lab:a".to_string(),
            "ssh-rsa BBB2 ke2lab:b".to_string(),
        ];
        let cur = "ssh-ed25519 OPER op@laptop\nssh-rsa OLD ke2lab:a\nssh-rsa BBB2 ke2lab:b\n";
        let out = authorized_keys(cur, &keys, &hosts);
        assert_eq!(
            out,
            "ssh-ed25519 OPER op@laptop\nssh-rsa AAA1 ke2lab:a\nssh-rsa BBB2 ke2lab:b\n"
        );
        assert_eq!(authorized_keys(&out, &keys, &hosts), out);
    }
}
