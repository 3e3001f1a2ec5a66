//! Watches what a secret must never be: part of an argument vector. While
//! an install runs, every host's `/proc/*/cmdline` and the exec API's record
//! of every exec (entrypoint and arguments, as `docker exec` inspect data
//! shows them to anyone with access to the engine) are sampled; any sample
//! containing one of the run's secrets (as is, percent-encoded or JSON
//! escaped) is kept, redacted, as a violation.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use bollard::Docker;
use ke2lab::host::Cmd;

use crate::artifacts::{redact, secret_forms};
use crate::lab::Lab;

/// A running watch; [`ArgvWatch::stop`] ends it and returns its findings.
pub struct ArgvWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Findings>,
}

/// What the watch saw.
#[derive(Debug, Default)]
pub struct Findings {
    /// Samples taken (one per host per round, plus the exec records).
    pub samples: usize,
    /// Distinct command lines seen.
    pub distinct: usize,
    /// Command lines that held a secret, redacted, with where they were.
    pub violations: Vec<String>,
}

/// Every process's command line, NUL-separated arguments joined by spaces,
/// one process a line.
fn cmdlines() -> Cmd {
    Cmd::sh("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done")
        .deadline(Duration::from_secs(10))
}

impl ArgvWatch {
    /// Starts sampling `lab`'s hosts every `every` for the secrets in
    /// `secrets`.
    pub fn start(lab: &Lab, secrets: Vec<String>, every: Duration) -> ArgvWatch {
        let hosts = lab.hosts();
        let containers: Vec<String> = lab
            .container_hosts()
            .iter()
            .map(|c| c.container().to_string())
            .collect();
        let docker = lab.docker().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let forms: Vec<String> = secrets.iter().flat_map(|s| secret_forms(s)).collect();
            let mut seen = BTreeSet::new();
            let mut out = Findings::default();
            let check = |place: &str, line: &str, out: &mut Findings| {
                if forms
                    .iter()
                    .any(|f| !f.is_empty() && line.contains(f.as_str()))
                {
                    out.violations
                        .push(format!("{place}: {}", redact(line, &secrets)));
                }
            };
            while !flag.load(Ordering::Relaxed) {
                for h in &hosts {
                    if let Ok(o) = h.run(&cmdlines()).await {
                        out.samples += 1;
                        for line in o.stdout_lossy().lines() {
                            if seen.insert(line.to_string()) {
                                check(&format!("`{}` /proc cmdline", h.name()), line, &mut out);
                            }
                        }
                    }
                }
                for line in exec_records(&docker, &containers).await {
                    out.samples += 1;
                    if seen.insert(line.clone()) {
                        check("exec inspect", &line, &mut out);
                    }
                }
                tokio::time::sleep(every).await;
            }
            out.distinct = seen.len();
            out
        });
        ArgvWatch { stop, task }
    }

    pub async fn stop(self) -> Result<Findings> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// The entrypoint and arguments of every exec the engine still records for
/// `containers`.
async fn exec_records(docker: &Docker, containers: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for c in containers {
        let Ok(info) = docker.inspect_container(c, None).await else {
            continue;
        };
        for id in info.exec_ids.unwrap_or_default() {
            if let Ok(e) = docker.inspect_exec(&id).await
                && let Some(p) = e.process_config
            {
                let mut words = vec![p.entrypoint.unwrap_or_default()];
                words.extend(p.arguments.unwrap_or_default());
                out.push(words.join(" "));
            }
        }
    }
    out
}
