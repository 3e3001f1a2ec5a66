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
    /// A private directory (mode 0700) for OpenSSH's control sockets: the
    /// first command to a host opens one master connection that every
    /// later command reuses (`ControlMaster=auto`), kept for
    /// [`CONTROL_PERSIST`] after the last and ended by [`Host::close`].
    /// `None`: a new connection per command.
    pub control_dir: Option<PathBuf>,
}

/// How long an idle master connection outlives its last command: long
/// enough to span the pauses of an install, short enough that a killed
/// ke2lab leaves nothing behind for long.
pub const CONTROL_PERSIST: Duration = Duration::from_secs(60);

/// The longest control directory that still leaves room for the socket's
/// name (12 hex digits, [`SshConfig::control_path`]) and the 17-byte
/// suffix OpenSSH binds before renaming, within a Unix socket path's 108
/// bytes (with its NUL).
const MAX_CONTROL_DIR: usize = 107 - 1 - 12 - 17;

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
            control_dir: None,
        }
    }

    /// The `ControlPath` for this host, when multiplexing is on and the
    /// directory is short enough for a socket path (else a connection per
    /// command, which still works).
    /// The socket is named by a hash of user, address and port (OpenSSH's
    /// `%C` is 40 digits; 12 leave a deeper directory usable).
    pub fn control_path(&self) -> Option<PathBuf> {
        use sha2::Digest;
        let dir = self.control_dir.as_ref()?;
        let who = format!("{}@{}:{}", self.user, self.address, self.port);
        let name: String = sha2::Sha256::digest(who.as_bytes())[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (dir.as_os_str().len() <= MAX_CONTROL_DIR).then(|| dir.join(name))
    }
}

/// A host behind `ssh`.
pub struct SshHost {
    cfg: SshConfig,
    /// Commands in flight to this host, at most [`MAX_CHANNELS`].
    channels: tokio::sync::Semaphore,
}

/// At most this many commands run at once on one server: over one master
/// connection each is a session channel, and sshd refuses a connection's
/// channels beyond its `MaxSessions` (10 by default); the install's survey
/// runs several steps' probes at once.
pub const MAX_CHANNELS: usize = 8;

/// `ssh` itself exits 255 when it could not carry the command.
const SSH_TRANSPORT_FAILURE: i32 = 255;

impl SshHost {
    pub fn new(cfg: SshConfig) -> Self {
        SshHost {
            cfg,
            channels: tokio::sync::Semaphore::new(MAX_CHANNELS),
        }
    }

    fn command(&self, remote: &str) -> Command {
        let c = &self.cfg;
        let mut cmd = Command::new("ssh");
        cmd.args(ssh_options(c))
            .arg(format!("{}@{}", c.user, c.address))
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

/// The client's options for `c` (pure, unit-tested).
pub fn ssh_options(c: &SshConfig) -> Vec<String> {
    let mut o: Vec<String> = vec!["-T".into()];
    let mut opt = |kv: String| {
        o.push("-o".into());
        o.push(kv);
    };
    opt("BatchMode=yes".into());
    opt("LogLevel=ERROR".into());
    opt(format!(
        "ConnectTimeout={}",
        c.connect_timeout.as_secs().max(1)
    ));
    // A peer that stops answering mid-command (partitioned, frozen) ends
    // the session after about 15 s instead of never.
    opt("ServerAliveInterval=5".into());
    opt("ServerAliveCountMax=3".into());
    if c.identity.is_some() {
        opt("IdentitiesOnly=yes".into());
    }
    if let Some(kh) = &c.known_hosts {
        // The lab's hosts get new keys each boot; a per-run file with
        // accept-new pins them for the run without touching ~/.ssh.
        opt(format!("UserKnownHostsFile={}", kh.display()));
        opt("StrictHostKeyChecking=accept-new".into());
    }
    if let Some(p) = c.control_path() {
        opt("ControlMaster=auto".into());
        opt(format!("ControlPath={}", p.display()));
        opt(format!("ControlPersist={}", CONTROL_PERSIST.as_secs()));
    }
    o.push("-p".into());
    o.push(c.port.to_string());
    if let Some(id) = &c.identity {
        o.push("-i".into());
        o.push(id.display().to_string());
    }
    o
}

#[async_trait]
impl Host for SshHost {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// `ssh -O exit`: the master connection ends now rather than
    /// [`CONTROL_PERSIST`] later. No master (never opened, or already
    /// gone) is not an error.
    async fn close(&self) -> Result<(), HostError> {
        let c = &self.cfg;
        let Some(p) = c.control_path() else {
            return Ok(());
        };
        let mut cmd = Command::new("ssh");
        cmd.arg("-o")
            .arg(format!("ControlPath={}", p.display()))
            .args(["-p", &c.port.to_string()])
            .args(["-O", "exit"])
            .arg(format!("{}@{}", c.user, c.address))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
            .await
            .map_err(|_| self.transport("`ssh -O exit` took more than 10s"))?
            .map_err(|e| self.transport(format!("cannot start `ssh -O exit`: {e}")))?;
        let err = String::from_utf8_lossy(&out.stderr);
        // No socket: no master was open (or it exited on its own).
        if !out.status.success()
            && !err.contains("No such file")
            && !err.contains("Connection refused")
        {
            return Err(self.transport(format!("`ssh -O exit`: {}", err.trim())));
        }
        // `-O exit` returns once the master was asked; it unlinks its
        // socket as it goes. Closed means gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while p.exists() {
            if std::time::Instant::now() > deadline {
                return Err(self.transport(format!(
                    "the master connection still holds `{}` 10s after `ssh -O exit`",
                    p.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, HostError> {
        let _channel = self
            .channels
            .acquire()
            .await
            .expect("the semaphore is never closed");
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn multiplexing_only_with_a_short_private_directory() {
        let mut c = SshConfig::new("ke2-server1", "10.0.0.1");
        let o = ssh_options(&c);
        assert!(!o.iter().any(|a| a.starts_with("Control")), "{o:?}");
        c.control_dir = Some(PathBuf::from("/run/ke2lab/mux"));
        let o = ssh_options(&c);
        let path = c.control_path().unwrap();
        assert_eq!(path.parent().unwrap(), Path::new("/run/ke2lab/mux"));
        assert_eq!(path.file_name().unwrap().len(), 12);
        for want in [
            "ControlMaster=auto".to_string(),
            format!("ControlPath={}", path.display()),
            "ControlPersist=60".to_string(),
        ] {
            assert!(o.contains(&want), "`{want}` missing: {o:?}");
        }
        // One socket per user, address and port.
        let mut other = c.clone();
        other.address = "10.0.0.2".into();
        assert_ne!(other.control_path(), c.control_path());
        // Too long for a socket path: a connection per command instead of
        // an ssh that fails on every command.
        c.control_dir = Some(PathBuf::from(format!("/{}", "d".repeat(80))));
        assert!(c.control_path().is_none());
        assert!(!ssh_options(&c).iter().any(|a| a.starts_with("Control")));
    }

    #[test]
    fn every_option_is_a_pair_and_the_port_and_key_are_passed() {
        let mut c = SshConfig::new("h", "a");
        c.port = 2222;
        c.identity = Some(PathBuf::from("/k/id"));
        c.known_hosts = Some(PathBuf::from("/k/known"));
        let o = ssh_options(&c);
        assert_eq!(o[0], "-T");
        let mut i = 1;
        while i < o.len() {
            assert!(["-o", "-p", "-i"].contains(&o[i].as_str()), "{o:?}");
            i += 2;
        }
        assert!(o.windows(2).any(|w| w == ["-p", "2222"]));
        assert!(o.windows(2).any(|w| w == ["-i", "/k/id"]));
        assert!(o.iter().any(|a| a == "UserKnownHostsFile=/k/known"));
    }
}
