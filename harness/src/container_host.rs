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
        let argv: Vec<String> = cmd.argv().map(str::to_string).collect();
        let exec = self
            .docker
            .create_exec(
                &self.container,
                CreateExecOptions {
                    attach_stdin: Some(cmd.stdin_bytes().is_some()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(argv),
                    user: cmd.run_as().map(str::to_string),
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
            let body = cmd.stdin_bytes().map(<[u8]>::to_vec);
            let writer = async move {
                if let Some(b) = body {
                    input.write_all(&b).await?;
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
