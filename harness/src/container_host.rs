//! `ContainerHost`: a lab host reached through the Docker exec API, so the
//! core's steps run on it exactly as they would over SSH.

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
}

impl ContainerHost {
    pub fn new(docker: Docker, container: impl Into<String>, name: impl Into<String>) -> Self {
        ContainerHost {
            docker,
            container: container.into(),
            name: name.into(),
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
        let input = cmd
            .stdin_bytes()
            .map(|b| Box::new(std::io::Cursor::new(b.to_vec())) as Input);
        let label = cmd.to_string();
        let started = std::time::Instant::now();
        let exec = self.exec(&label, cmd.exec_argv(), cmd.run_as(), input);
        // `timeout` on the host ends the command itself; this bounds the
        // exec API too (a paused container never answers).
        let limit = cmd.deadline_of().unwrap_or(ke2lab::host::DEFAULT_DEADLINE);
        let out = tokio::time::timeout(limit + ke2lab::host::TRANSPORT_GRACE, exec)
            .await
            .map_err(|_| cmd.deadline_error(&self.name))??;
        if cmd.hit_deadline(&out, started.elapsed()) {
            return Err(cmd.deadline_error(&self.name));
        }
        Ok(out)
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
                CreateExecOptions {
                    attach_stdin: Some(input_src.is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(argv),
                    user: user.map(str::to_string),
                    // Commands see the environment a login would give them.
                    env: Some(vec![
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                            .to_string(),
                        "LANG=C.UTF-8".to_string(),
                    ]),
                    ..Default::default()
                },
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
