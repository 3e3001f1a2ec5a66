//! The `Host` abstraction: one machine the core can run commands on and read
//! or write files of, whatever carries the bytes (SSH, `docker exec`, a script).

mod recording;
mod ssh;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

pub use recording::{Event, Recorder, RecordingHost, Rule};
pub use ssh::{SshConfig, SshHost};

/// One argument of a command line. Secret arguments (passwords, join tokens)
/// are passed to the host untouched but shown as `***` everywhere a human or a
/// log could see them.
#[derive(Clone, PartialEq, Eq)]
pub struct Arg {
    text: String,
    secret: bool,
}

impl Arg {
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A command to run on a host: an argument vector (never a string that a shell
/// re-splits, unless built with [`Cmd::sh`]), optional standard input and the
/// user to run it as.
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd {
    argv: Vec<Arg>,
    stdin: Option<Vec<u8>>,
    stdin_secret: bool,
    user: Option<String>,
    /// How long the command may run on the host before it is killed.
    deadline: Option<Duration>,
}

/// What a transport adds to a command's deadline for carrying it (starting
/// the exec or the SSH connection, reading the exit code) before it gives
/// up on the transport itself.
pub const TRANSPORT_GRACE: Duration = Duration::from_secs(10);

/// The deadline of a command that sets none: long enough for the slowest
/// step of the procedure on a real server (a package install, a base
/// backup inside an online recovery has its own), short enough that a hung
/// command ends with an error naming it instead of stalling the install.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(900);

impl Cmd {
    /// A program and its arguments.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv
                .into_iter()
                .map(|s| Arg {
                    text: s.into(),
                    secret: false,
                })
                .collect(),
            stdin: None,
            stdin_secret: false,
            user: None,
            deadline: None,
        }
    }

    /// A shell script run by `sh -c`. Values that must not be echoed are passed
    /// as positional parameters with [`Cmd::secret_arg`] and referenced as `$1`,
    /// `$2`… inside the script, so the script text itself stays printable.
    pub fn sh(script: impl Into<String>) -> Self {
        Cmd::new([
            "sh".to_string(),
            "-c".to_string(),
            script.into(),
            "sh".to_string(),
        ])
    }

    /// Appends a plain argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.argv.push(Arg {
            text: a.into(),
            secret: false,
        });
        self
    }

    /// Appends several plain arguments.
    pub fn args_from<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Appends an argument that is redacted in every rendering of the command.
    pub fn secret_arg(mut self, a: impl Into<String>) -> Self {
        self.argv.push(Arg {
            text: a.into(),
            secret: true,
        });
        self
    }

    /// Feeds `body` to the command's standard input.
    pub fn stdin(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(body.into());
        self
    }

    /// Feeds `body` to standard input and marks it secret (never recorded).
    pub fn secret_stdin(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(body.into());
        self.stdin_secret = true;
        self
    }

    /// Runs the command as `user` instead of the transport's default (root).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Bounds the command's run time on the host: transports run it under
    /// `timeout` (SIGTERM at the deadline, SIGKILL two seconds later) and
    /// give up on the transport itself after [`TRANSPORT_GRACE`] more, so a
    /// probe against a partitioned or frozen peer cannot hang its caller.
    /// Not part of the displayed line (transcripts stay what the host is
    /// asked to do).
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    pub fn deadline_of(&self) -> Option<Duration> {
        self.deadline
    }

    /// The command as a transport runs it: with its own deadline, or
    /// [`DEFAULT_DEADLINE`].
    pub fn bounded(&self) -> std::borrow::Cow<'_, Cmd> {
        match self.deadline {
            Some(_) => std::borrow::Cow::Borrowed(self),
            None => std::borrow::Cow::Owned(self.clone().deadline(DEFAULT_DEADLINE)),
        }
    }

    /// The argument vector a transport executes: the command itself, under
    /// coreutils `timeout` when it has a deadline.
    pub fn exec_argv(&self) -> Vec<String> {
        let own = self.argv.iter().map(|a| a.text.clone());
        match self.deadline {
            Some(d) => ["timeout", "-k", "2"]
                .into_iter()
                .map(str::to_string)
                .chain([format!("{}", d.as_secs().max(1))])
                .chain(own)
                .collect(),
            None => own.collect(),
        }
    }

    /// Whether `out`, after `elapsed`, is the deadline's work (`timeout`
    /// exits 124, or 137 when its SIGKILL was needed) rather than the
    /// command's own answer: a command may exit 124 itself (an inner
    /// `timeout` of a reachability probe does), so the status counts only
    /// once the deadline has passed.
    pub fn hit_deadline(&self, out: &Output, elapsed: Duration) -> bool {
        self.deadline
            .is_some_and(|d| elapsed + Duration::from_millis(500) >= d)
            && (out.status == 124 || out.status == 137)
    }

    /// The error for a command that ran past its deadline on `host`.
    pub fn deadline_error(&self, host: &str) -> HostError {
        HostError::Deadline {
            host: host.to_string(),
            command: self.to_string(),
            limit: self.deadline.unwrap_or(TRANSPORT_GRACE),
        }
    }

    pub fn argv(&self) -> impl Iterator<Item = &str> {
        self.argv.iter().map(|a| a.text.as_str())
    }

    pub fn args(&self) -> &[Arg] {
        &self.argv
    }

    pub fn stdin_bytes(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    pub fn stdin_is_secret(&self) -> bool {
        self.stdin_secret
    }

    pub fn run_as(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The command as one POSIX shell line, secrets included: only for
    /// transports that must hand a string to a remote shell (SSH).
    pub fn shell_line(&self) -> String {
        self.exec_argv()
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Replaces every secret value of this command found in `text` by `***`, so
    /// that a tool echoing its arguments (or a token) into stderr cannot leak it.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for a in self.argv.iter().filter(|a| a.secret && !a.text.is_empty()) {
            out = out.replace(&a.text, "***");
        }
        out
    }

    /// [`Cmd::check`] for a command built in place (the future owns it).
    pub async fn check_owned(self, host: &dyn Host) -> Result<Output, HostError> {
        self.check(host).await
    }

    /// Runs the command and turns a non-zero exit into an error naming the
    /// host, the (redacted) command line and the tail of its stderr.
    pub async fn check(&self, host: &dyn Host) -> Result<Output, HostError> {
        let out = host.run(self).await?;
        if out.status == 0 {
            Ok(out)
        } else {
            Err(HostError::Failed {
                host: host.name().to_string(),
                command: self.to_string(),
                code: out.status,
                stderr: self.redact(&tail(&out.stderr_lossy(), 600)),
            })
        }
    }
}

/// Renders the command for people: shell-quoted, secrets as `***`, and the
/// user prefixed when it is not the default.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "(as {u}) ")?;
        }
        let line = self
            .argv
            .iter()
            .map(|a| {
                if a.secret {
                    "***".to_string()
                } else {
                    shell_quote(&a.text)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        f.write_str(&line)
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cmd({self})")
    }
}

/// What a command returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Output {
            status: 0,
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    pub fn fail(status: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    pub fn success(&self) -> bool {
        self.status == 0
    }

    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Errors of the transport layer and of checked commands.
#[derive(Debug, Error)]
pub enum HostError {
    /// The bytes could not be carried: connection refused, exec API error…
    #[error("cannot {action} on `{host}`: {detail}")]
    Transport {
        host: String,
        action: String,
        detail: String,
    },
    /// The command ran past its deadline and was killed (or its transport
    /// did not come back in time).
    #[error("command `{command}` on `{host}` did not finish within {}s", .limit.as_secs())]
    Deadline {
        host: String,
        command: String,
        limit: Duration,
    },
    /// The command ran and exited non-zero (only from [`Cmd::check`]).
    #[error("command `{command}` failed on `{host}` (exit {code}): {stderr}")]
    Failed {
        host: String,
        command: String,
        code: i32,
        stderr: String,
    },
}

/// Exit status the default `read_file` uses to say "no such file"; chosen far
/// from the codes `cat` itself returns.
const ABSENT: i32 = 44;

/// A file read's answer: its output, `None` for [`ABSENT`], else the failure.
fn file_answer(host: &str, cmd: &Cmd, out: Output) -> Result<Option<Vec<u8>>, HostError> {
    match out.status {
        0 => Ok(Some(out.stdout)),
        ABSENT => Ok(None),
        code => Err(HostError::Failed {
            host: host.to_string(),
            command: cmd.to_string(),
            code,
            stderr: tail(&out.stderr_lossy(), 600),
        }),
    }
}

/// [`Host::read_file_meta`]'s output: `stat`'s line, then the content.
fn split_meta(mut stdout: Vec<u8>) -> (Vec<u8>, Option<String>) {
    match stdout.iter().position(|b| *b == b'\n') {
        Some(nl) => {
            let body = stdout.split_off(nl + 1);
            let meta = String::from_utf8_lossy(&stdout).trim().to_string();
            (body, Some(meta))
        }
        None => (
            Vec::new(),
            Some(String::from_utf8_lossy(&stdout).trim().to_string()),
        ),
    }
}

/// One machine. Transports implement `run`; file access has default
/// implementations over `run` so that every transport behaves the same way.
#[async_trait]
pub trait Host: Send + Sync {
    fn name(&self) -> &str;

    /// Runs a command. Only transport failures are errors; a non-zero exit is
    /// an `Output` (use [`Cmd::check`] to make it an error).
    async fn run(&self, cmd: &Cmd) -> Result<Output, HostError>;

    /// Writes `body` atomically (temporary file, then rename) with the given
    /// mode and owner (`user` or `user:group`).
    async fn write_file(
        &self,
        path: &str,
        body: &[u8],
        mode: u32,
        owner: &str,
    ) -> Result<(), HostError> {
        let cmd = Cmd::sh(
            "set -e; d=$(dirname \"$1\"); mkdir -p \"$d\"; t=\"$1.ke2lab.$$\"; \
             cat > \"$t\"; chown \"$3\" \"$t\"; chmod \"$2\" \"$t\"; mv -f \"$t\" \"$1\"",
        )
        .arg(path)
        .arg(format!("{mode:o}"))
        .arg(owner)
        .secret_stdin(body.to_vec());
        let out = self.run(&cmd).await?;
        if out.success() {
            Ok(())
        } else {
            Err(HostError::Failed {
                host: self.name().to_string(),
                command: cmd.to_string(),
                code: out.status,
                stderr: tail(&out.stderr_lossy(), 600),
            })
        }
    }

    /// Ends what the transport keeps open between commands (an SSH
    /// master connection); a no-op for transports that keep nothing.
    async fn close(&self) -> Result<(), HostError> {
        Ok(())
    }

    /// Reads a file with its owner and mode (`user 640`, as `stat -c '%U %a'`
    /// prints them) in one command, so checking a wanted file costs one
    /// round trip, not two (a no-op provision checks some forty files per
    /// host). `None` when the file does not exist; the metadata is `None`
    /// where the transport keeps none (a recording double).
    async fn read_file_meta(
        &self,
        path: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, HostError> {
        let cmd = Cmd::sh(format!(
            "test -e \"$1\" || exit {ABSENT}; stat -c '%U %a' -- \"$1\" && cat -- \"$1\""
        ))
        .arg(path);
        let out = self.run(&cmd).await?;
        Ok(file_answer(self.name(), &cmd, out)?.map(split_meta))
    }

    /// Reads a file; `None` when it does not exist.
    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        let cmd = Cmd::sh(format!("test -e \"$1\" || exit {ABSENT}; cat -- \"$1\"")).arg(path);
        let out = self.run(&cmd).await?;
        file_answer(self.name(), &cmd, out)
    }
}

/// Quotes a word for a POSIX shell; words made only of safe characters are
/// left bare so transcripts stay readable.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The last `max` bytes of `s` (on a char boundary), trimmed.
pub fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_then_content() {
        assert_eq!(
            split_meta(b"postgres 600\nline 1\nline 2\n".to_vec()),
            (b"line 1\nline 2\n".to_vec(), Some("postgres 600".into()))
        );
        // An empty file: the stat line alone.
        assert_eq!(
            split_meta(b"root 644\n".to_vec()),
            (Vec::new(), Some("root 644".into()))
        );
    }

    #[test]
    fn only_the_deadline_makes_a_deadline_error() {
        let c = Cmd::new(["probe"]).deadline(Duration::from_secs(10));
        let own_124 = Output::fail(124, "");
        // The command's own 124 (an inner `timeout` of 3 s): an answer.
        assert!(!c.hit_deadline(&own_124, Duration::from_secs(3)));
        // 124 once the deadline passed: `timeout` ended it.
        assert!(c.hit_deadline(&own_124, Duration::from_secs(10)));
        assert!(c.hit_deadline(&Output::fail(137, ""), Duration::from_secs(12)));
        assert!(!c.hit_deadline(&Output::fail(1, ""), Duration::from_secs(12)));
        assert!(!Cmd::new(["x"]).hit_deadline(&own_124, Duration::from_secs(999)));
    }

    #[test]
    fn display_redacts_secret_args() {
        let c = Cmd::new(["docker", "swarm", "join", "--token"])
            .secret_arg("SWMTKN-1-abc")
            .arg("10.0.0.1:2377");
        assert_eq!(c.to_string(), "docker swarm join --token *** 10.0.0.1:2377");
        assert!(c.shell_line().contains("SWMTKN-1-abc"));
        assert_eq!(c.redact("bad token SWMTKN-1-abc"), "bad token ***");
    }

    #[test]
    fn quoting_round_trips_through_sh() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("{{json .}}"), "'{{json .}}'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("/etc/hosts"), "/etc/hosts");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("  abcdef  ", 3), "…def");
        assert_eq!(tail("abc", 10), "abc");
    }
}
