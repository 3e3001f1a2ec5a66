//! `RecordingHost`: a test double of [`Host`] that answers from a script and
//! records every command and file operation, so a step's transcript can be a
//! snapshot test without any machine.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Cmd, Host, HostError, Output};

/// One recorded operation, in the order the hosts saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Run {
        host: String,
        cmd: String,
        stdin: Option<String>,
    },
    Write {
        host: String,
        path: String,
        mode: u32,
        owner: String,
        body: String,
    },
    Read {
        host: String,
        path: String,
        found: bool,
    },
}

/// A scripted answer: every command whose displayed line starts with `prefix`
/// (on the named host, or any host) gets the next queued output; the last one
/// repeats, so a rule can model "inactive, then active".
#[derive(Clone, Debug)]
pub struct Rule {
    host: Option<String>,
    prefix: String,
    outputs: VecDeque<Output>,
    /// The rule applies only once this flag is set on the host.
    when: Option<String>,
    /// Running a matching command sets this flag on the host (a state change
    /// such as "PostgreSQL started" that later probes must see), or on the
    /// named other host (a command that acts across hosts).
    sets: Vec<(Option<String>, String)>,
    /// Running a matching command writes this file on the host (what a
    /// command such as `ssh-keygen` leaves behind).
    writes: Option<(String, Vec<u8>)>,
}

impl Rule {
    pub fn any(prefix: impl Into<String>, outputs: Vec<Output>) -> Self {
        Rule {
            host: None,
            prefix: prefix.into(),
            outputs: outputs.into(),
            when: None,
            sets: Vec::new(),
            writes: None,
        }
    }

    pub fn on(host: impl Into<String>, prefix: impl Into<String>, outputs: Vec<Output>) -> Self {
        Rule {
            host: Some(host.into()),
            ..Rule::any(prefix, outputs)
        }
    }

    /// Applies only after `flag` was set on the host.
    pub fn when(mut self, flag: impl Into<String>) -> Self {
        self.when = Some(flag.into());
        self
    }

    /// A matching command sets `flag` on the host.
    pub fn sets(mut self, flag: impl Into<String>) -> Self {
        self.sets.push((None, flag.into()));
        self
    }

    /// A matching command sets `flag` on another host (e.g. an online
    /// recovery run on the primary starts the standby's server).
    pub fn sets_on(mut self, host: impl Into<String>, flag: impl Into<String>) -> Self {
        self.sets.push((Some(host.into()), flag.into()));
        self
    }

    /// A matching command leaves this file on the host.
    pub fn writes(mut self, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        self.writes = Some((path.into(), body.into()));
        self
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    flags: std::collections::BTreeSet<(String, String)>,
    files: BTreeMap<(String, String), Vec<u8>>,
    events: Vec<Event>,
}

/// The shared script and transcript of a group of recording hosts, so that a
/// multi-host step produces one ordered transcript.
#[derive(Clone, Default)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A host that records into this recorder.
    pub fn host(&self, name: &str) -> RecordingHost {
        RecordingHost {
            name: name.to_string(),
            recorder: self.clone(),
        }
    }

    /// One host per name, as the steps take them.
    pub fn hosts<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Arc<dyn Host>> {
        names
            .into_iter()
            .map(|n| Arc::new(self.host(n)) as Arc<dyn Host>)
            .collect()
    }

    /// Adds a scripted answer. Later rules win over earlier ones, so a test
    /// can refine a general default.
    pub fn rule(&self, rule: Rule) -> &Self {
        self.state.lock().unwrap().rules.push(rule);
        self
    }

    /// Seeds a file on a host.
    pub fn file(&self, host: &str, path: &str, body: impl Into<Vec<u8>>) -> &Self {
        self.state
            .lock()
            .unwrap()
            .files
            .insert((host.to_string(), path.to_string()), body.into());
        self
    }

    /// The file as the hosts left it.
    pub fn file_on(&self, host: &str, path: &str) -> Option<Vec<u8>> {
        let st = self.state.lock().unwrap();
        st.files.get(&(host.to_string(), path.to_string())).cloned()
    }

    pub fn events(&self) -> Vec<Event> {
        self.state.lock().unwrap().events.clone()
    }

    /// Forgets the transcript (the script and files stay), e.g. between the
    /// first run and the idempotence run of a step.
    pub fn clear_events(&self) {
        self.state.lock().unwrap().events.clear();
    }

    /// The transcript as stable text for snapshot tests.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for e in self.events() {
            match e {
                Event::Run { host, cmd, stdin } => {
                    let _ = writeln!(out, "[{host}] $ {cmd}");
                    if let Some(s) = stdin {
                        for line in s.lines() {
                            let _ = writeln!(out, "[{host}]   < {line}");
                        }
                    }
                }
                Event::Write {
                    host,
                    path,
                    mode,
                    owner,
                    body,
                } => {
                    let _ = writeln!(out, "[{host}] write {path} (mode {mode:o}, owner {owner})");
                    for line in body.lines() {
                        let _ = writeln!(out, "[{host}]   | {line}");
                    }
                }
                Event::Read { host, path, found } => {
                    let what = if found { "found" } else { "absent" };
                    let _ = writeln!(out, "[{host}] read {path} ({what})");
                }
            }
        }
        out
    }
}

/// One scripted host of a [`Recorder`].
pub struct RecordingHost {
    name: String,
    recorder: Recorder,
}

impl RecordingHost {
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

#[async_trait]
impl Host for RecordingHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, HostError> {
        let line = cmd.to_string();
        let mut st = self.recorder.state.lock().unwrap();
        let stdin = cmd.stdin_bytes().map(|b| {
            if cmd.stdin_is_secret() {
                "***".to_string()
            } else {
                String::from_utf8_lossy(b).into_owned()
            }
        });
        st.events.push(Event::Run {
            host: self.name.clone(),
            cmd: line.clone(),
            stdin,
        });
        let name = self.name.clone();
        let flags = st.flags.clone();
        let rule = st.rules.iter_mut().rev().find(|r| {
            r.host.as_deref().is_none_or(|h| h == name)
                && line.starts_with(&r.prefix)
                && r.when
                    .as_ref()
                    .is_none_or(|f| flags.contains(&(name.clone(), f.clone())))
        });
        let (out, sets, writes) = match rule {
            Some(r) => {
                let out = if r.outputs.len() > 1 {
                    r.outputs.pop_front().unwrap()
                } else {
                    r.outputs.front().cloned().unwrap_or_default()
                };
                (out, r.sets.clone(), r.writes.clone())
            }
            None => (Output::default(), Vec::new(), None),
        };
        for (on, f) in sets {
            st.flags.insert((on.unwrap_or_else(|| name.clone()), f));
        }
        if let Some((path, body)) = writes {
            st.files.insert((name, path), body);
        }
        Ok(out)
    }

    async fn write_file(
        &self,
        path: &str,
        body: &[u8],
        mode: u32,
        owner: &str,
    ) -> Result<(), HostError> {
        let mut st = self.recorder.state.lock().unwrap();
        st.events.push(Event::Write {
            host: self.name.clone(),
            path: path.to_string(),
            mode,
            owner: owner.to_string(),
            // Files written with mode 0600 hold secrets by convention of the
            // steps; their bodies never enter a transcript.
            body: if mode & 0o077 == 0 {
                "***".to_string()
            } else {
                String::from_utf8_lossy(body).into_owned()
            },
        });
        st.files
            .insert((self.name.clone(), path.to_string()), body.to_vec());
        Ok(())
    }

    /// The double keeps no owners or modes: the content decides alone.
    async fn read_file_meta(
        &self,
        path: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, HostError> {
        Ok(self.read_file(path).await?.map(|b| (b, None)))
    }

    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        let mut st = self.recorder.state.lock().unwrap();
        let body = st
            .files
            .get(&(self.name.clone(), path.to_string()))
            .cloned();
        st.events.push(Event::Read {
            host: self.name.clone(),
            path: path.to_string(),
            found: body.is_some(),
        });
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_answer_in_order_and_last_repeats() {
        let rec = Recorder::new();
        rec.rule(Rule::any(
            "docker info",
            vec![Output::ok("inactive"), Output::ok("active")],
        ));
        let h = rec.host("h1");
        let c = Cmd::new(["docker", "info"]);
        assert_eq!(h.run(&c).await.unwrap().stdout, b"inactive");
        assert_eq!(h.run(&c).await.unwrap().stdout, b"active");
        assert_eq!(h.run(&c).await.unwrap().stdout, b"active");
        assert_eq!(h.run(&Cmd::new(["true"])).await.unwrap(), Output::default());
    }

    #[tokio::test]
    async fn flags_switch_rules_and_commands_leave_files() {
        let rec = Recorder::new();
        rec.rule(Rule::any("pg_isready", vec![Output::fail(2, "")]));
        rec.rule(Rule::any("pg_isready", vec![Output::ok("")]).when("pg"));
        rec.rule(
            Rule::any("start", vec![Output::ok("")])
                .sets("pg")
                .writes("/pid", "1"),
        );
        let (a, b) = (rec.host("a"), rec.host("b"));
        let ready = Cmd::new(["pg_isready"]);
        assert_eq!(a.run(&ready).await.unwrap().status, 2);
        a.run(&Cmd::new(["start"])).await.unwrap();
        assert_eq!(a.run(&ready).await.unwrap().status, 0);
        assert_eq!(b.run(&ready).await.unwrap().status, 2, "flags are per host");
        assert_eq!(rec.file_on("a", "/pid").as_deref(), Some(&b"1"[..]));
    }

    #[tokio::test]
    async fn files_are_recorded_and_secrets_hidden() {
        let rec = Recorder::new();
        let h = rec.host("h1");
        h.write_file("/a", b"public", 0o644, "root").await.unwrap();
        h.write_file("/b", b"pw", 0o600, "postgres").await.unwrap();
        assert_eq!(h.read_file("/b").await.unwrap().unwrap(), b"pw");
        assert!(h.read_file("/c").await.unwrap().is_none());
        let t = rec.transcript();
        assert!(t.contains("| public"));
        assert!(!t.contains("pw\n"));
    }
}
