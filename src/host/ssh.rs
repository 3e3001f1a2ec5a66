//! `SshHost`: a real server reached with the system's OpenSSH client, so that
//! the user's agent, config and known hosts behave as they do for the operator.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Cmd, Host, HostError, Output, shell_quote};

/// How to reach one server.
#[derive(Clone, Debug)]
pub struct SshConfig {
    /// The name the core uses for the host (the topology's host name).
    pub name: String,
    /// Where to connect: an address or a resolvable name.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// A private key to use instead of the agent's and ssh's defaults.
    pub identity: Option<PathBuf>,
    /// A known-hosts file of its own (the lab uses one per run).
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl SshConfig {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        SshConfig {
            name: name.into(),
            address: address.into(),
            port: 22,
            user: "root".into(),
            identity: None,
            known_hosts: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A host behind `ssh`.
pub struct SshHost {
    cfg: SshConfig,
}

/// `ssh` itself exits 255 when it could not carry the command.
const SSH_TRANSPORT_FAILURE: i32 = 255;

impl SshHost {
    pub fn new(cfg: SshConfig) -> Self {
        SshHost { cfg }
    }

    fn command(&self, remote: &str) -> Command {
        let c = &self.cfg;
        let mut cmd = Command::new("ssh");
        cmd.arg("-T")
            .args(["-o", "BatchMode=yes"])
            .args(["-o", "LogLevel=ERROR"])
            .args([
                "-o".to_string(),
                format!("ConnectTimeout={}", c.connect_timeout.as_secs().max(1)),
            ])
            // A peer that stops answering mid-command (partitioned, frozen)
            // ends the session after about 15 s instead of never.
            .args(["-o", "ServerAliveInterval=5"])
            .args(["-o", "ServerAliveCountMax=3"])
            .args(["-p", &c.port.to_string()]);
        if let Some(id) = &c.identity {
            cmd.arg("-i").arg(id).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(kh) = &c.known_hosts {
            // The lab's hosts get new keys each boot; a per-run file with
            // accept-new pins them for the run without touching ~/.ssh.
            cmd.arg("-o")
                .arg(format!("UserKnownHostsFile={}", kh.display()))
                .args(["-o", "StrictHostKeyChecking=accept-new"]);
        }
        cmd.arg(format!("{}@{}", c.user, c.address))
            .arg("--")
            .arg(remote);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    fn transport(&self, detail: impl Into<String>) -> HostError {
        HostError::Transport {
            host: self.cfg.name.clone(),
            action: "run a command over ssh".into(),
            detail: detail.into(),
        }
    }
}

#[async_trait]
impl Host for SshHost {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, HostError> {
        let cmd = &*cmd.bounded();
        let mut remote = cmd.shell_line();
        if let Some(u) = cmd.run_as() {
            // runuser exists on both platform families and needs no tty.
            remote = format!("runuser -u {} -- {remote}", shell_quote(u));
        }
        let mut child = self
            .command(&remote)
            .spawn()
            .map_err(|e| self.transport(format!("cannot start `ssh`: {e}")))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let body = cmd.stdin_bytes().map(<[u8]>::to_vec);
        let writer = tokio::spawn(async move {
            if let Some(b) = body {
                stdin.write_all(&b).await?;
            }
            stdin.shutdown().await
        });
        let started = std::time::Instant::now();
        let waited = child.wait_with_output();
        // `bounded` gave the command a deadline; kill_on_drop ends the ssh
        // client when the deadline drops it.
        let limit = cmd.deadline_of().unwrap_or(super::DEFAULT_DEADLINE);
        let out = tokio::time::timeout(limit + super::TRANSPORT_GRACE, waited)
            .await
            .map_err(|_| cmd.deadline_error(&self.cfg.name))?
            .map_err(|e| self.transport(e.to_string()))?;
        // A command that does not read its stdin closes the pipe early; that
        // is not a transport failure.
        let _ = writer.await;
        let status = out.status.code().unwrap_or(-1);
        if status == SSH_TRANSPORT_FAILURE {
            return Err(self.transport(cmd.redact(&String::from_utf8_lossy(&out.stderr))));
        }
        let out = Output {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        };
        if cmd.hit_deadline(&out, started.elapsed()) {
            return Err(cmd.deadline_error(&self.cfg.name));
        }
        Ok(out)
    }
}
