//! `ContainerHost`: a lab host reached through the Docker exec API, so the
//! core's steps run on it exactly as they would over SSH.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use ke2lab::host::{Cmd, Host, HostError, Output};
use tokio::io::AsyncWriteExt;

/// One container "host" of a lab.
#[derive(Clone)]
pub struct ContainerHost {
    docker: Docker,
    /// The container's name (unique per run).
    container: String,
    /// The topology's host name.
    name: String,
    /// Idle command sessions, shared by the clones of this host.
    sessions: Arc<Mutex<Vec<Session>>>,
}

/// The command server a [`Session`] runs in the container (bash, as root).
/// One request: a line `SCRIPT_LEN STDIN_LEN USER` (`-`: root), the script
/// (a POSIX shell line), then the standard input; one answer: a line
/// `STATUS OUT_LEN ERR_LEN`, then both outputs. The script reaches the
/// command's shell through an inherited descriptor and `eval`, never an
/// argument, so a secret in it shows in no process's arguments beyond the
/// command's own (as with an exec): a root command is a subshell of the
/// server, another user's reads it from an inherited descriptor; its files
/// live in a private (0700) directory on the host's `/run` tmpfs, emptied
/// after each command. Every process started costs about 5 ms here (the
/// root filesystem is fuse-overlayfs), so the server starts as few as it
/// can: a root command costs the command, one `stat` and one `cat` (and a
/// `head` only when it has input). Another user's command starts through
/// `setpriv`, not `runuser`: the same uid, gid, groups and `HOME`, `USER`,
/// `LOGNAME` (what `runuser -u` sets), without a PAM session, 15-20 ms
/// less per command here (the user's gid and home are read from the
/// password database once per session). A
/// daemon that kept the command's stdout would add bytes after the sizes
/// were taken; the next answer then fails to parse and the session is
/// dropped (such a daemon would hang a plain exec for ever, and none
/// does). `LC_ALL=C` is a shell variable only (lengths count bytes), not
/// exported to commands.
const SERVER: &str = r#"LC_ALL=C
d=$(mktemp -d /run/ke2lab-session.XXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
run='IFS= read -r -d "" -u 3 s; exec 3<&-; eval "$s"'
declare -A gid home
while read -r slen ilen user; do
    s=
    IFS= read -r -d '' -N "$slen" s
    [ "${#s}" -eq "$slen" ] || exit 1
    in=/dev/null
    if [ "$ilen" -gt 0 ]; then
        head -c "$ilen" >"$d/in" || exit 1
        in=$d/in
    fi
    if [ "$user" = - ]; then
        (eval "$s") <"$in" >"$d/out" 2>"$d/err"
    else
        # A plain name only: it is an array subscript below.
        [[ $user =~ ^[a-z_][a-z0-9_-]*$ ]] || exit 1
        if [ -z "${gid[$user]}" ]; then
            IFS=: read -r _ _ _ "gid[$user]" _ "home[$user]" _ \
                < <(getent passwd -- "$user")
            [ -n "${gid[$user]}" ] || exit 1
        fi
        printf '%s' "$s" >"$d/s"
        HOME=${home[$user]} USER=$user LOGNAME=$user \
            setpriv --reuid="$user" --regid="${gid[$user]}" --init-groups -- \
            bash -c "$run" 3<"$d/s" <"$in" >"$d/out" 2>"$d/err"
    fi
    st=$?
    s=
    : >"$d/s"
    : >"$d/in"
    { read -r os; read -r es; } < <(stat -c %s "$d/out" "$d/err")
    printf '%s %s %s\n' "$st" "$os" "$es"
    cat "$d/out" "$d/err"
done
"#;

type OutputStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;

/// A long-lived exec running [`SERVER`]: a command through it costs a fork
/// in the container instead of an exec (create, start, inspect, and runc
/// entering the container: 100-270 ms each on this machine kind, about 180
/// of them in a no-op provision).
struct Session {
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    output: OutputStream,
    buf: Vec<u8>,
}

impl Session {
    /// Whether the exec still runs: its stream has not ended (a stopped or
    /// restarted container ends it) and has sent nothing unasked.
    fn alive(&mut self) -> bool {
        use futures_util::FutureExt;
        loop {
            match self.output.next().now_or_never() {
                None => return true,
                Some(Some(Ok(bollard::container::LogOutput::StdErr { message }))) => {
                    tracing::debug!("session: {}", String::from_utf8_lossy(&message).trim());
                }
                Some(_) => return false,
            }
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        loop {
            match self.output.next().await {
                Some(Ok(
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message },
                )) => {
                    self.buf.extend_from_slice(&message);
                    return Ok(());
                }
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => {
                    tracing::debug!("session: {}", String::from_utf8_lossy(&message).trim());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the session ended".into()),
            }
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(p) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=p).collect();
                return Ok(String::from_utf8_lossy(&line).trim().to_string());
            }
            self.fill().await?;
        }
    }

    async fn bytes(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn request(&mut self, cmd: &Cmd) -> Result<Output, String> {
        let script = cmd.shell_line();
        let stdin = cmd.stdin_bytes().unwrap_or_default();
        let mut req = format!(
            "{} {} {}\n",
            script.len(),
            stdin.len(),
            cmd.run_as().unwrap_or("-")
        )
        .into_bytes();
        req.extend_from_slice(script.as_bytes());
        req.extend_from_slice(stdin);
        self.input
            .write_all(&req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        self.input.flush().await.map_err(|e| format!("send: {e}"))?;
        let head = self.line().await?;
        let mut f = head.split(' ').map(str::parse::<usize>);
        let (Some(Ok(status)), Some(Ok(out)), Some(Ok(err)), None) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("unexpected answer `{head}`"));
        };
        Ok(Output {
            status: status as i32,
            stdout: self.bytes(out).await?,
            stderr: self.bytes(err).await?,
        })
    }
}

impl ContainerHost {
    pub fn new(docker: Docker, container: impl Into<String>, name: impl Into<String>) -> Self {
        ContainerHost {
            docker,
            container: container.into(),
            name: name.into(),
            sessions: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn container(&self) -> &str {
        &self.container
    }

    fn transport(&self, action: &str, e: impl std::fmt::Display) -> HostError {
        HostError::Transport {
            host: self.name.clone(),
            action: action.to_string(),
            detail: format!("container `{}`: {e}", self.container),
        }
    }
}

#[async_trait]
impl Host for ContainerHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, HostError> {
        let cmd = &*cmd.bounded();
        let label = cmd.to_string();
        let started = std::time::Instant::now();
        // `timeout` on the host ends the command itself; this bounds the
        // transport too (a paused container never answers).
        let limit = cmd.deadline_of().unwrap_or(ke2lab::host::DEFAULT_DEADLINE);
        let bound = limit + ke2lab::host::TRANSPORT_GRACE;
        let out = if sessions_enabled() {
            let mut session = self.session().await?;
            match tokio::time::timeout(bound, session.request(cmd)).await {
                Ok(Ok(out)) => {
                    self.sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(session);
                    out
                }
                // A session that failed or overran is dropped: its exec
                // ends with its input, and the next command gets a new one.
                Ok(Err(e)) => return Err(self.transport(&format!("run `{label}`"), e)),
                Err(_) => return Err(cmd.deadline_error(&self.name)),
            }
        } else {
            let input = cmd
                .stdin_bytes()
                .map(|b| Box::new(std::io::Cursor::new(b.to_vec())) as Input);
            let exec = self.exec(&label, cmd.exec_argv(), cmd.run_as(), input);
            tokio::time::timeout(bound, exec)
                .await
                .map_err(|_| cmd.deadline_error(&self.name))??
        };
        if cmd.hit_deadline(&out, started.elapsed()) {
            return Err(cmd.deadline_error(&self.name));
        }
        // Every command's round trip, for finding where a phase's time goes
        // (`KE2LAB_LOG=trace`); the label hides secrets like any display.
        tracing::trace!(
            host = %self.name,
            ms = started.elapsed().as_millis() as u64,
            status = out.status,
            "exec `{label}`"
        );
        Ok(out)
    }
}

/// Commands go through [`Session`]s unless `KE2LAB_EXEC=plain` asks for
/// one exec per command (the transport before sessions, for comparison).
fn sessions_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("KE2LAB_EXEC").as_deref() != Ok("plain"))
}

/// An exec of `argv` (as `user`, else root) with its output attached.
fn exec_options(argv: Vec<String>, user: Option<&str>, stdin: bool) -> CreateExecOptions<String> {
    CreateExecOptions {
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(argv),
        user: user.map(str::to_string),
        // Commands see the environment a login would give them.
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "LANG=C.UTF-8".to_string(),
        ]),
        ..Default::default()
    }
}

/// What an exec reads on its standard input.
type Input = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

impl ContainerHost {
    /// Runs `argv` with a file's content streamed to its standard input
    /// (never held in memory whole): `docker load` of an image archive.
    /// `sent` counts the bytes streamed (the console's progress).
    pub async fn feed_file(
        &self,
        argv: &[&str],
        file: &std::path::Path,
        sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Output, HostError> {
        let label = argv.join(" ");
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| self.transport(&format!("open `{}` for `{label}`", file.display()), e))?;
        let out = self
            .exec(
                &label,
                argv.iter().map(|a| a.to_string()).collect(),
                None,
                Some(Box::new(crate::console::Counted::new(f, sent))),
            )
            .await?;
        if out.status != 0 {
            return Err(HostError::Failed {
                host: self.name.clone(),
                command: label,
                code: out.status,
                stderr: ke2lab::host::tail(&out.stderr_lossy(), 600),
            });
        }
        Ok(out)
    }

    /// An idle session that still runs, else a new one.
    async fn session(&self) -> Result<Session, HostError> {
        loop {
            let idle = self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            match idle {
                Some(mut s) => {
                    if s.alive() {
                        return Ok(s);
                    }
                }
                None => break,
            }
        }
        let exec = self
            .docker
            .create_exec(
                &self.container,
                exec_options(vec!["bash".into(), "-c".into(), SERVER.into()], None, true),
            )
            .await
            .map_err(|e| self.transport("start a command session", e))?;
        match self
            .docker
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .map_err(|e| self.transport("start a command session", e))?
        {
            StartExecResults::Attached { output, input } => Ok(Session {
                input,
                output,
                buf: Vec::new(),
            }),
            StartExecResults::Detached => {
                Err(self.transport("start a command session", "the exec started detached"))
            }
        }
    }

    async fn exec(
        &self,
        cmd: &str,
        argv: Vec<String>,
        user: Option<&str>,
        input_src: Option<Input>,
    ) -> Result<Output, HostError> {
        let exec = self
            .docker
            .create_exec(
                &self.container,
                exec_options(argv, user, input_src.is_some()),
            )
            .await
            .map_err(|e| self.transport(&format!("start `{cmd}`"), e))?;
        let started = self
            .docker
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .map_err(|e| self.transport(&format!("start `{cmd}`"), e))?;
        let mut out = Output::default();
        if let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        {
            let writer = async move {
                if let Some(mut src) = input_src {
                    tokio::io::copy(&mut src, &mut input).await?;
                    input.shutdown().await?;
                }
                Ok::<_, std::io::Error>(input)
            };
            let reader = async {
                while let Some(frame) = output.next().await {
                    match frame.map_err(|e| self.transport(&format!("read `{cmd}`"), e))? {
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message } => {
                            out.stdout.extend_from_slice(&message)
                        }
                        bollard::container::LogOutput::StdErr { message } => {
                            out.stderr.extend_from_slice(&message)
                        }
                        bollard::container::LogOutput::StdIn { .. } => {}
                    }
                }
                Ok::<_, HostError>(())
            };
            // The input half must stay alive until the output ends: dropping
            // it early closes the hijacked connection.
            let (w, r) = tokio::join!(writer, reader);
            r?;
            w.map_err(|e| self.transport(&format!("feed `{cmd}`"), e))?;
        }
        // The exit code appears a moment after the stream ends.
        for _ in 0..100 {
            let info = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| self.transport(&format!("inspect `{cmd}`"), e))?;
            if info.running != Some(true) {
                out.status = info.exit_code.unwrap_or(-1) as i32;
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(self.transport(&format!("wait for `{cmd}`"), "exit code never appeared"))
    }
}
