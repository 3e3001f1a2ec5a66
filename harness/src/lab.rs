//! A lab: three (or more) container "hosts" on a bridge network of their own,
//! booted from the host image, each with a nested Docker engine and sshd.
//! Everything created carries `ke2lab.run=<run id>` so it can be reaped.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig, Mount,
    MountType, NetworkCreateRequest, NetworkingConfig, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use futures_util::future::try_join_all;
use ke2lab::cluster::{Cluster, Finding, Snapshot};
use ke2lab::host::{Cmd, Host, SshConfig, SshHost};
use ke2lab::install::InstallReport;
use ke2lab::steps::Cx;
use ke2lab::topology::{Credentials, HostSpec, Topology};
use ke2lab::wait::{Poll, wait_for};

use crate::container_host::ContainerHost;
use crate::engine::{self, Isolation};
use crate::events::EventLog;
use crate::faults::{self, Faults};
use crate::image::{self, ImageReport, Recipe};
use crate::{HOST_LABEL, RUN_LABEL, STATE_LABEL};

/// Where the harness keeps its state, found at run time (`paths`).
pub use crate::paths::{home, remove_state_dir, state_dir_to_remove};

/// The directory of run `run`'s state: its topology, secrets, ssh key,
/// `install.log` and `phases.json`.
pub fn run_dir(run: &str) -> PathBuf {
    home().join("runs").join(run)
}

/// The private directory (0700) of the SSH control sockets: one master
/// connection per host for a whole install (`SshConfig::control_dir`).
pub fn mux_dir() -> Result<PathBuf> {
    private_dir(&home().join("mux"))
}

/// `dir`, made with mode 0700 when missing.
fn private_dir(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = dir.to_path_buf();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot make `{}`", dir.display()))?;
    Ok(dir)
}

/// Connects to the machine's engine and agrees on an API version with it.
pub async fn connect() -> Result<Docker> {
    let d = Docker::connect_with_local_defaults().context("cannot reach the docker engine")?;
    d.negotiate_version()
        .await
        .context("cannot negotiate an API version with the docker engine")
}

/// The run's event log in its state directory ([`EventLog::persist_to`]).
pub const EVENTS_FILE: &str = "events.log";

/// A phase of boot or install and how long it took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Phase {
    pub name: String,
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
    pub detail: String,
    /// The changes an install step made (none for the harness's phases).
    pub changes: Option<usize>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// A harness phase under way: on the console from [`PhaseTimer::start`]
/// on, as done once [`PhaseTimer::end`] says what it did (dropped without
/// it, the phase shows as failed).
pub struct PhaseTimer {
    name: String,
    start: Instant,
    span: tracing::Span,
}

impl PhaseTimer {
    pub fn start(name: &str) -> PhaseTimer {
        PhaseTimer {
            name: name.to_string(),
            start: Instant::now(),
            span: crate::console::phase_span(name),
        }
    }

    pub fn end(self, detail: String) -> Phase {
        crate::console::done(&self.span, &detail);
        Phase {
            name: self.name,
            elapsed: self.start.elapsed(),
            detail,
            changes: None,
        }
    }
}

/// A booted lab.
pub struct Lab {
    pub(crate) docker: Docker,
    pub run: String,
    /// The name the user gave it (`ke2lab up --name`).
    pub name: Option<String>,
    /// The topology with addresses remapped into this run's subnet.
    pub topology: Topology,
    pub subnet: String,
    pub(crate) hosts: Vec<ContainerHost>,
    pub state_dir: PathBuf,
    pub image: Option<ImageReport>,
    pub phases: Vec<Phase>,
    pub isolation: Option<Isolation>,
    /// Phases, faults and repairs with their times (artifacts' `events.log`).
    pub events: EventLog,
    /// Faults injected and not undone yet, with their ids; teardown undoes
    /// them. Kept in the run directory's `faults.json` too (read on attach).
    pub(crate) active_faults: Mutex<faults::Record>,
    /// The ke2 stack was deployed by this handle; teardown removes it first.
    pub(crate) stack_deployed: bool,
    /// The cluster's one typed view, built on first use ([`Lab::cluster`])
    /// once the hosts exist, with the run's passwords resolved then: polling
    /// loops ask every second, and secrets.toml is read once per handle.
    pub(crate) cluster: OnceLock<Cluster>,
}

pub use ke2lab::cluster::StackCa;

/// Where the stack's images come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackImages {
    /// The lab's stand-ins (test fixtures), loaded and tagged as the stack's
    /// image names.
    Standins,
    /// The real images, pulled by each host's engine (needs a registry).
    Registry,
}

impl Lab {
    /// Builds the image if needed, then boots one container per host and waits
    /// until each has sshd and a Docker engine answering. On any failure the
    /// partly created lab is removed, unless `keep` is set.
    pub async fn boot(topology: &Topology, keep: bool) -> Result<Lab> {
        Lab::boot_as(topology, keep, new_run_id(), None).await
    }

    /// [`Lab::boot`] with a run id chosen by the caller (so an interrupted
    /// command knows what to remove) and an optional name for people.
    pub async fn boot_as(
        topology: &Topology,
        keep: bool,
        run: String,
        name: Option<String>,
    ) -> Result<Lab> {
        check_run_id(&run)?;
        let docker = connect().await?;
        let state_dir = run_dir(&run);
        let events = EventLog::default();

        let t = PhaseTimer::start("image");
        let img = image::ensure(&docker, &Recipe::default(), &home().join("build")).await?;
        let image_phase = t.end(match img.built_with {
            Some(b) => format!("built `{}` with {b:?}", img.tag),
            None => format!("cached `{}`", img.tag),
        });

        let mut lab = Lab {
            docker,
            run,
            name,
            topology: topology.clone(),
            subnet: String::new(),
            hosts: Vec::new(),
            state_dir,
            image: Some(img),
            phases: Vec::new(),
            isolation: None,
            events,
            active_faults: Mutex::new(faults::Record::default()),
            stack_deployed: false,
            cluster: OnceLock::new(),
        };
        lab.events.record(format!("run `{}` booting", lab.run));
        lab.phase(image_phase);
        match lab.create(topology).await {
            Ok(()) => Ok(lab),
            Err(e) => {
                if keep {
                    eprintln!(
                        "boot failed; keeping run `{}` for inspection (`ke2lab down --run {}` removes it)",
                        lab.run, lab.run
                    );
                } else {
                    let _ = down_run(&lab.docker, &lab.run).await;
                }
                Err(e)
            }
        }
    }

    async fn create(&mut self, topology: &Topology) -> Result<()> {
        let phase = PhaseTimer::start("boot");
        let t = Instant::now();
        let tag = self.image.as_ref().unwrap().tag.clone();
        let isolation = engine::isolation(&self.docker, &tag, &self.run, &home()).await?;
        tracing::debug!("isolation probed after {:?}", t.elapsed());
        self.isolation = Some(isolation.clone());

        let (subnet, remapped, gateway) = self.create_network(topology).await?;
        self.subnet = subnet.clone();
        self.topology = remapped;
        std::fs::create_dir_all(&self.state_dir)?;
        // The event log outlives this process: `logs export` and later
        // commands read and continue it.
        self.events
            .persist_to(
                &self.state_dir.join(EVENTS_FILE),
                &self.state_dir.join("secrets.toml"),
            )
            .with_context(|| format!("cannot write the event log of run `{}`", self.run))?;
        // 0600: a topology may carry explicit credentials in clear.
        write_private(
            &self.state_dir.join("topology.toml"),
            self.topology.to_toml_string().as_bytes(),
        )?;

        let extra_hosts: Vec<String> = self
            .topology
            .hosts
            .iter()
            .map(|h| format!("{}:{}", h.name, h.address))
            .collect();
        // Hosts are created and started concurrently; the ssh key is made
        // while their engines start.
        let hosts = try_join_all(
            self.topology
                .hosts
                .iter()
                .map(|spec| self.create_host(spec, &tag, &isolation, &extra_hosts)),
        )
        .await?;
        tracing::debug!("containers started after {:?}", t.elapsed());
        self.hosts = hosts;
        let (ready, key) = tokio::join!(
            self.wait_ready(Duration::from_secs(90)),
            self.make_ssh_key()
        );
        ready?;
        tracing::debug!("engines ready after {:?}", t.elapsed());
        self.install_ssh_key(&key?).await?;
        tracing::debug!("ssh key installed after {:?}", t.elapsed());
        self.phase(phase.end(format!(
            "{} hosts on `{subnet}` (gateway {gateway}), engines ready, {}",
            self.hosts.len(),
            isolation.describe()
        )));
        Ok(())
    }

    /// Creates one host's volume and container and starts it.
    async fn create_host(
        &self,
        spec: &HostSpec,
        tag: &str,
        isolation: &Isolation,
        extra_hosts: &[String],
    ) -> Result<ContainerHost> {
        let net = self.network_name();
        let container = format!("ke2lab-{}-{}", self.run, spec.name);
        let volume = format!("{container}-var-lib");
        let mut labels = self.labels();
        labels.insert(HOST_LABEL.into(), spec.name.clone());
        labels.insert(STATE_LABEL.into(), self.state_dir.display().to_string());
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(volume.clone()),
                labels: Some(self.labels()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create volume `{volume}` for `{}`", spec.name))?;
        let host_config = HostConfig {
            extra_hosts: Some(extra_hosts.to_vec()),
            // /run and /tmp as tmpfs like a booted system; /tmp must allow
            // exec (Pgpool and PostgreSQL scripts run from it).
            tmpfs: Some(HashMap::from([
                ("/run".to_string(), String::new()),
                ("/tmp".to_string(), "exec".to_string()),
            ])),
            // The host's state lives on its own disk, as on a server: the
            // nested engine's overlay2 cannot sit on the outer overlay
            // filesystem, and PostgreSQL, Gluster and the WAL archive write
            // 2-4x slower through this machine's fuse-overlayfs root (a base
            // backup of the fresh cluster: 2.9-3.5 s there, 0.9-1.8 s on a
            // volume). Docker fills the empty volume from the image's
            // `/var/lib` on first mount (dpkg's state, the package's
            // PostgreSQL cluster: about 48 MB).
            mounts: Some(vec![Mount {
                target: Some(HOST_DISK.into()),
                source: Some(volume.clone()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]),
            ..isolation.host_config()
        };
        let body = ContainerCreateBody {
            image: Some(tag.to_string()),
            hostname: Some(spec.name.clone()),
            // The boot script forwards the heartbeat port to loopback (the
            // packaged Pgpool-II's receivers listen there only).
            env: Some(vec![format!(
                "KE2LAB_HEARTBEAT_PORT={}",
                self.topology.ports.heartbeat
            )]),
            labels: Some(labels),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    net.clone(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(spec.address.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        self.docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .name(&container)
                        .build(),
                ),
                body,
            )
            .await
            .with_context(|| format!("cannot create the container of host `{}`", spec.name))?;
        self.docker
            .start_container(&container, None)
            .await
            .with_context(|| format!("cannot start the container of host `{}`", spec.name))?;
        Ok(ContainerHost::new(
            self.docker.clone(),
            container,
            spec.name.clone(),
        ))
    }

    /// Re-attaches to a running lab by its run id (for `status`, `exec`).
    pub async fn attach(run: &str) -> Result<Lab> {
        check_run_id(run)?;
        let docker = connect().await?;
        let containers = list_containers(&docker, Some(run)).await?;
        if containers.is_empty() {
            bail!("no lab with run id `{run}` is running");
        }
        let state_dir = containers
            .iter()
            .find_map(|c| c.labels.as_ref()?.get(STATE_LABEL).cloned())
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("run `{run}` has no state directory label"))?;
        let text = std::fs::read_to_string(state_dir.join("topology.toml"))
            .with_context(|| format!("cannot read the topology of run `{run}`"))?;
        let topology = Topology::from_toml_str(&text)?.topology;
        let mut hosts = Vec::new();
        for spec in &topology.hosts {
            let c = containers
                .iter()
                .find(|c| c.labels.as_ref().and_then(|l| l.get(HOST_LABEL)) == Some(&spec.name))
                .ok_or_else(|| anyhow!("run `{run}` has no container for host `{}`", spec.name))?;
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            hosts.push(ContainerHost::new(docker.clone(), name, spec.name.clone()));
        }
        let name = containers
            .iter()
            .find_map(|c| c.labels.as_ref()?.get(crate::owner::NAME_LABEL).cloned());
        // The log the booting process began, continued.
        let events = EventLog::resume(
            &state_dir.join(EVENTS_FILE),
            &state_dir.join("secrets.toml"),
        );
        // What `ke2lab fault` (or a scenario of another process) left in
        // force; an unreadable record is said, never a reason to fail.
        let active_faults = faults::Record::load(&state_dir).unwrap_or_else(|e| {
            crate::console::warn(&format!("faults in force of run `{run}`: {e:#}"));
            faults::Record::default()
        });
        Ok(Lab {
            docker,
            run: run.to_string(),
            name,
            topology,
            subnet: String::new(),
            hosts,
            state_dir,
            image: None,
            phases: Vec::new(),
            isolation: None,
            events,
            active_faults: Mutex::new(active_faults),
            stack_deployed: false,
            cluster: OnceLock::new(),
        })
    }

    /// Records each step of an install report as a phase.
    fn record_steps(&mut self, report: &InstallReport) {
        for s in &report.steps {
            self.phase(Phase {
                name: s.step.to_string(),
                elapsed: s.elapsed,
                detail: format!("{} change(s)", s.changes.len()),
                changes: Some(s.changes.len()),
            });
        }
    }

    /// (Re)writes `phases.json` in the run's directory: every phase this
    /// handle recorded (name, seconds, changes, detail) and, for a whole
    /// `up`, the total.
    pub fn write_phases(&self, total: Option<Duration>) -> Result<PathBuf> {
        let doc = serde_json::json!({
            "run": self.run,
            "total_seconds": total.map(|t| (t.as_secs_f64() * 1000.0).round() / 1000.0),
            "phases": self.phases,
        });
        let path = self.state_dir.join("phases.json");
        write_private(&path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
        Ok(path)
    }

    /// Records a finished phase (also in the event log).
    pub fn phase(&mut self, p: Phase) {
        self.events.record(format!(
            "phase {} {:.2}s {}",
            p.name,
            p.elapsed.as_secs_f64(),
            p.detail
        ));
        self.phases.push(p);
    }

    /// Runs of labs that have containers now, newest first by run id order
    /// of creation time.
    pub async fn runs() -> Result<Vec<String>> {
        let docker = connect().await?;
        let mut cs = list_containers(&docker, None).await?;
        cs.sort_by_key(|c| std::cmp::Reverse(c.created.unwrap_or(0)));
        let mut runs: Vec<String> = Vec::new();
        for c in cs {
            if let Some(r) = c.labels.as_ref().and_then(|l| l.get(RUN_LABEL))
                && !runs.contains(r)
            {
                runs.push(r.clone());
            }
        }
        Ok(runs)
    }

    pub fn network_name(&self) -> String {
        format!("ke2lab-{}", self.run)
    }

    /// The run label, the owner's labels and the lab's name.
    fn labels(&self) -> HashMap<String, String> {
        let mut l = image::run_labels(&self.run);
        l.extend(crate::owner::labels());
        if let Some(n) = &self.name {
            l.insert(crate::owner::NAME_LABEL.into(), n.clone());
        }
        l
    }

    /// The hosts as the core sees them.
    pub fn hosts(&self) -> Vec<Arc<dyn Host>> {
        self.hosts
            .iter()
            .map(|h| Arc::new(h.clone()) as Arc<dyn Host>)
            .collect()
    }

    pub fn container_hosts(&self) -> &[ContainerHost] {
        &self.hosts
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<Arc<dyn Host>> {
        self.hosts
            .iter()
            .find(|h| h.name() == name)
            .map(|h| Arc::new(h.clone()) as Arc<dyn Host>)
            .ok_or_else(|| anyhow!("the lab has no host `{name}`"))
    }

    /// The container of the host called `name`.
    pub fn container_of(&self, name: &str) -> Result<String> {
        self.hosts
            .iter()
            .find(|h| h.name() == name)
            .map(|h| h.container().to_string())
            .ok_or_else(|| anyhow!("the lab has no host `{name}`"))
    }

    /// The same hosts reached over SSH with the run's key, as real servers
    /// would be.
    pub fn ssh_hosts(&self) -> Vec<Arc<dyn Host>> {
        self.topology
            .hosts
            .iter()
            .map(|h| {
                let mut cfg = SshConfig::new(h.name.clone(), h.address.to_string());
                cfg.identity = Some(self.state_dir.join("id_ed25519"));
                cfg.known_hosts = Some(self.state_dir.join("known_hosts"));
                // The lab's own directory: its sockets go with the run.
                cfg.control_dir = private_dir(&self.state_dir.join("mux")).ok();
                Arc::new(SshHost::new(cfg)) as Arc<dyn Host>
            })
            .collect()
    }

    /// Runs the provisioning core's install on the hosts and records its
    /// phases.
    pub async fn install(&mut self) -> Result<InstallReport> {
        let hosts = self.hosts();
        let creds = self.credentials()?;
        let cx = Cx::new(&self.topology, &hosts).with_credentials(&creds);
        let report = ke2lab::install::install(&cx).await?;
        self.record_steps(&report);
        Ok(report)
    }

    /// The cluster's one typed view ([`ke2lab::cluster::Cluster`]): this
    /// lab's topology, hosts and credentials, built once per handle on first
    /// use (after boot or attach, when the hosts exist). Every cluster
    /// question of the harness and the scenarios goes through it. Never
    /// fails: credentials that cannot be resolved (an unreadable secrets
    /// file) fail only the questions that need a password, with the reason.
    pub fn cluster(&self) -> &Cluster {
        self.cluster.get_or_init(|| {
            let hosts = self.hosts();
            match self
                .topology
                .credentials
                .resolve_kept(&self.state_dir.join("secrets.toml"))
            {
                Ok(c) => Cluster::new(self.topology.clone(), hosts, c),
                Err(e) => Cluster::without_credentials(
                    self.topology.clone(),
                    hosts,
                    format!("run `{}`: {e:#}", self.run),
                ),
            }
        })
    }

    /// Everything the cluster says of itself now (never fails on a probe:
    /// a failed one is an entry of the snapshot's `errors`; `Result` for
    /// the callers' sake only).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.cluster().snapshot().await)
    }

    /// Every unhealthy fact of a snapshot taken now; empty when healthy.
    pub async fn verdict(&self) -> Result<Vec<Finding>> {
        Ok(ke2lab::cluster::verdict(&self.snapshot().await?))
    }

    /// Steps 1-3 only (engine, firewall, swarm): for scenarios about the
    /// swarm alone.
    pub async fn install_swarm(&mut self) -> Result<InstallReport> {
        let hosts = self.hosts();
        let cx = Cx::new(&self.topology, &hosts);
        let mut report = InstallReport::default();
        ke2lab::install::install_swarm(&cx, &mut report).await?;
        Ok(report)
    }

    /// Steps 1-4 (engine, firewall, swarm, Gluster shared directory): for
    /// scenarios about the shared directory alone.
    pub async fn install_shared_dir(&mut self) -> Result<InstallReport> {
        let hosts = self.hosts();
        let cx = Cx::new(&self.topology, &hosts);
        let mut report = InstallReport::default();
        ke2lab::install::install_swarm(&cx, &mut report).await?;
        ke2lab::install::install_shared_dir(&cx, &mut report).await?;
        Ok(report)
    }

    /// Step 8 from a ke2-docker checkout (copied to the manager, never
    /// written into), recording its phases. With [`StackImages::Standins`]
    /// the stand-in images are loaded into every host's engine under the
    /// stack file's image names before the deploy; with
    /// [`StackImages::Registry`] the engines pull the real ones.
    pub async fn install_stack(
        &mut self,
        tree: ke2lab::steps::checkout::Tree,
        images: StackImages,
    ) -> Result<InstallReport> {
        let hosts = self.hosts();
        let creds = self.credentials()?;
        let topology = self.topology.clone();
        let cx = Cx::new(&topology, &hosts).with_credentials(&creds);
        let mut report = InstallReport::default();
        let opts = ke2lab::install::prepare_stack(&cx, tree, &mut report).await?;
        self.record_steps(&report);
        if images == StackImages::Standins {
            let wanted = ke2lab::install::stack_images(&cx, &opts).await?;
            self.load_standins(&wanted).await?;
        }
        let mut deploy = InstallReport::default();
        ke2lab::install::deploy_stack(&cx, opts, &mut deploy).await?;
        self.record_steps(&deploy);
        report.steps.extend(deploy.steps);
        self.stack_deployed = true;
        Ok(report)
    }

    /// Builds the stand-in images when missing (phase `standin-build`) and
    /// loads them into every host, tagged as the stack's `images` (service →
    /// image name) say (phase `standin-load`).
    pub async fn load_standins(
        &mut self,
        images: &std::collections::BTreeMap<String, String>,
    ) -> Result<crate::standin::Standins> {
        use crate::standin::{self, Kind};
        let mut wanted = std::collections::BTreeMap::new();
        for (service, image) in images {
            let kind = Kind::for_image(image).with_context(|| {
                format!(
                    "service `{service}`: no stand-in for image `{image}` (the lab has nginx, \
                     redis, rabbitmq and Kompira stand-ins; use the real images instead)"
                )
            })?;
            wanted.insert(image.clone(), kind);
        }
        let t = PhaseTimer::start("standin-build");
        let bin = standin::kompira_binary().await?;
        let built = standin::ensure(&self.docker, &home().join("build"), &bin).await?;
        self.phase(t.end(format!(
            "{} ({}), archive {} MB",
            built.base.tag,
            match built.base.built_with {
                Some(b) => format!("built with {b:?}"),
                None => "cached".into(),
            },
            built.archive_bytes / 1_000_000
        )));
        let t = PhaseTimer::start("standin-load");
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let total = built.archive_bytes * self.hosts.len() as u64;
        let load = try_join_all(
            self.hosts
                .iter()
                .map(|h| standin::load_into(h, &built, &wanted, sent.clone())),
        );
        // The bytes so far, redrawn while the loads stream.
        let show = async {
            loop {
                crate::console::bytes(sent.load(std::sync::atomic::Ordering::Relaxed), Some(total));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let loads = tokio::select! {
            r = load => r?,
            () = show => unreachable!("the display loop never ends"),
        };
        self.phase(
            t.end(
                loads
                    .iter()
                    .map(|l| {
                        format!(
                            "{} {} {:.1}s",
                            l.host,
                            if l.loaded { "loaded" } else { "had them" },
                            l.elapsed.as_secs_f64()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        );
        Ok(built)
    }

    /// Waits until every service of the stack runs its desired tasks
    /// (phase `stack-converged`).
    pub async fn await_stack(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<ke2lab::probe::stack::Service>> {
        let t = PhaseTimer::start("stack-converged");
        let hosts = self.hosts();
        let services = {
            let cx = Cx::new(&self.topology, &hosts);
            ke2lab::install::wait_stack_converged(&cx, 0, timeout).await?
        };
        self.phase(t.end(format!(
            "{} services at their desired replicas",
            services.len()
        )));
        Ok(services)
    }

    /// `docker stack rm` of the ke2 stack, waiting until its services and
    /// containers are gone from every host (phase `stack-rm`).
    pub async fn remove_stack(&mut self, timeout: Duration) -> Result<()> {
        let t = PhaseTimer::start("stack-rm");
        let hosts = self.hosts();
        {
            let cx = Cx::new(&self.topology, &hosts);
            ke2lab::install::remove_stack(&cx, 0, timeout).await?;
        }
        self.stack_deployed = false;
        self.phase(t.end("services and containers gone on every host".into()));
        Ok(())
    }

    /// The run's passwords: explicit or document defaults per the topology,
    /// otherwise generated once and kept (mode 0600) in the run's state
    /// directory, so a re-provision uses the same ones. Those the
    /// [`Lab::cluster`] resolved, once per handle: the file does not change
    /// under a running lab, and polling loops ask every second.
    pub fn credentials(&self) -> Result<Credentials> {
        Ok(self.cluster().credentials()?.clone())
    }

    /// Removes every container, network and volume of this run and its state.
    pub async fn teardown(self) -> Result<()> {
        down_run(&self.docker, &self.run).await
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    async fn create_network(&self, t: &Topology) -> Result<(String, Topology, Ipv4Addr)> {
        let prefix = t.network.prefix;
        let candidates = subnet_candidates(prefix, &self.run);
        let mut last = String::new();
        for lab_net in candidates {
            let remapped = remap(t, lab_net);
            let gateway = pick_gateway(&remapped, lab_net)?;
            let subnet = format!("{lab_net}/{prefix}");
            let req = NetworkCreateRequest {
                name: self.network_name(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.clone()),
                        gateway: Some(gateway.to_string()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                labels: Some(self.labels()),
                ..Default::default()
            };
            match self.docker.create_network(req).await {
                Ok(_) => return Ok((subnet, remapped, gateway)),
                // Another run (or another network) holds it: try the next.
                Err(e) if e.to_string().contains("overlap") => last = e.to_string(),
                Err(e) => return Err(e).context("cannot create the lab network"),
            }
        }
        bail!("no free /{prefix} subnet for the lab network in 172.16.0.0/12 (last error: {last})")
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let probe =
            Cmd::sh("test -e /run/ke2lab-booted && docker version --format '{{.Server.Version}}'");
        try_join_all(self.hosts.iter().map(|h| {
            let probe = probe.clone();
            async move {
                wait_for(
                    &format!(
                        "host `{}` booted with its docker engine answering",
                        h.name()
                    ),
                    timeout,
                    || async {
                        match h.run(&probe).await {
                            Ok(o) if o.success() => Poll::Ready(()),
                            Ok(o) => Poll::NotYet(o.stderr_lossy()),
                            Err(e) => Poll::NotYet(e.to_string()),
                        }
                    },
                )
                .await
            }
        }))
        .await?;
        Ok(())
    }

    /// A per-run key pair for root; the public half goes to every host so
    /// that `SshHost` can reach the lab like real servers.
    async fn make_ssh_key(&self) -> Result<Vec<u8>> {
        let key = self.state_dir.join("id_ed25519");
        if !key.exists() {
            let st = tokio::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("ke2lab-{}", self.run))
                .arg("-f")
                .arg(&key)
                .status()
                .await
                .context("cannot run `ssh-keygen` (install openssh-client)")?;
            if !st.success() {
                bail!("`ssh-keygen` failed ({st})");
            }
        }
        Ok(std::fs::read(key.with_extension("pub"))?)
    }

    async fn install_ssh_key(&self, public: &[u8]) -> Result<()> {
        try_join_all(
            self.hosts
                .iter()
                .map(|h| h.write_file("/root/.ssh/authorized_keys", public, 0o600, "root")),
        )
        .await?;
        Ok(())
    }
}

/// A short random run id; also the suffix of every resource name.
pub fn new_run_id() -> String {
    format!("r{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Whether `id` has exactly the form [`new_run_id`] makes: `r` and six
/// lowercase hex digits. A run id names a directory under `home()/runs/`
/// and a label filter, so anything else (`../x`, `/`, `a/b`, empty) could
/// point outside the run's own state.
pub fn is_run_id(id: &str) -> bool {
    id.len() == 7
        && id.starts_with('r')
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A run id that [`is_run_id`] refuses: bad input (the CLI exits 2), found
/// before Docker is contacted.
#[derive(Debug)]
pub struct BadRunId(pub String);

impl std::fmt::Display for BadRunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`--run`: invalid run id `{}` (expected `r` and 6 lowercase hex digits, \
             as `ke2lab up` prints, e.g. `r1a2b3c`)",
            ke2lab::topology::shown(&self.0)
        )
    }
}

impl std::error::Error for BadRunId {}

/// [`is_run_id`] as an error.
pub fn check_run_id(id: &str) -> Result<(), BadRunId> {
    if is_run_id(id) {
        Ok(())
    } else {
        Err(BadRunId(id.to_string()))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

/// Candidate lab subnets of the topology's prefix length inside 172.16.0.0/12,
/// starting at a place derived from the run id so that concurrent runs try
/// different subnets first.
/// Writes `body` to `path` readable by its owner only (created so, never
/// widened afterwards by the umask).
pub fn write_private(path: &std::path::Path, body: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    // An older file keeps its mode on open: narrow it too.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(body)?;
    Ok(())
}

pub fn subnet_candidates(prefix: u8, run: &str) -> Vec<Ipv4Addr> {
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    let prefix = prefix.max(12);
    let count = 1u32 << (prefix as u32 - 12);
    let start = run
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32))
        % count;
    (0..count.min(4096))
        .map(|i| {
            let n = (start + i) % count;
            Ipv4Addr::from(base + (n << (32 - prefix as u32)))
        })
        // 172.17/16 and 172.18/16 are docker0 and docker_gwbridge inside the
        // hosts' own engines; a lab subnet there would shadow them.
        .filter(|a| !matches!(a.octets()[1], 17 | 18))
        .collect()
}

/// The topology with every address moved into `lab_net`, keeping each
/// address's offset inside its subnet (10.20.0.3 → 172.x.y.3).
pub fn remap(t: &Topology, lab_net: Ipv4Addr) -> Topology {
    let m = mask(t.network.prefix);
    let net = u32::from(t.hosts[0].address) & m;
    let mv = |a: Ipv4Addr| Ipv4Addr::from(u32::from(lab_net) + (u32::from(a) - net));
    let mut out = t.clone();
    for h in &mut out.hosts {
        h.address = mv(h.address);
    }
    out.network.vip = mv(t.network.vip);
    out
}

/// The bridge's gateway: the highest usable address no host or VIP uses.
pub fn pick_gateway(t: &Topology, lab_net: Ipv4Addr) -> Result<Ipv4Addr> {
    let m = mask(t.network.prefix);
    let broadcast = u32::from(lab_net) | !m;
    let used: Vec<u32> = t
        .hosts
        .iter()
        .map(|h| u32::from(h.address))
        .chain([u32::from(t.network.vip)])
        .collect();
    (u32::from(lab_net) + 1..broadcast)
        .rev()
        .find(|a| !used.contains(a))
        .map(Ipv4Addr::from)
        .ok_or_else(|| anyhow!("the topology's subnet has no address left for the lab gateway"))
}

/// Every labelled container (all runs when `run` is `None`), running or not.
/// One lab on this machine, as its labels and run directory describe it.
#[derive(Clone, Debug)]
pub struct LabInfo {
    pub run: String,
    pub name: Option<String>,
    pub liveness: crate::owner::Liveness,
    pub containers: usize,
}

/// Every lab on this machine (anything carrying the run label: containers,
/// and networks or volumes a killed run left without containers), newest
/// first.
pub async fn labs(docker: &Docker) -> Result<Vec<LabInfo>> {
    let mut cs = list_containers(docker, None).await?;
    cs.sort_by_key(|c| std::cmp::Reverse(c.created.unwrap_or(0)));
    let mut by_run: Vec<(String, HashMap<String, String>, usize)> = Vec::new();
    let mut add = |labels: HashMap<String, String>, container: bool| {
        let Some(run) = labels.get(RUN_LABEL).cloned() else {
            return;
        };
        match by_run.iter_mut().find(|(r, _, _)| *r == run) {
            Some(e) => {
                e.2 += usize::from(container);
                for (k, v) in labels {
                    e.1.entry(k).or_insert(v);
                }
            }
            None => by_run.push((run, labels, usize::from(container))),
        }
    };
    for c in cs {
        add(c.labels.unwrap_or_default(), true);
    }
    let filters = HashMap::from([("label", vec![RUN_LABEL.to_string()])]);
    for n in docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?
    {
        add(n.labels.unwrap_or_default(), false);
    }
    for v in docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?
        .volumes
        .unwrap_or_default()
    {
        add(v.labels, false);
    }
    let home = home();
    Ok(by_run
        .into_iter()
        .filter(|(r, _, _)| is_run_id(r))
        .map(|(run, labels, containers)| {
            let dir = labels
                .get(STATE_LABEL)
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join("runs").join(&run));
            LabInfo {
                liveness: crate::owner::liveness(&labels, &dir),
                name: labels.get(crate::owner::NAME_LABEL).cloned(),
                run,
                containers,
            }
        })
        .collect())
}

pub async fn list_containers(
    docker: &Docker,
    run: Option<&str>,
) -> Result<Vec<bollard::models::ContainerSummary>> {
    let filter = match run {
        Some(r) => format!("{RUN_LABEL}={r}"),
        None => RUN_LABEL.to_string(),
    };
    let filters = HashMap::from([("label", vec![filter])]);
    Ok(docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?)
}

/// What is labelled, by kind: the invariant "nothing leaks" is checked on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// Lists every labelled container, network and volume (of one run, or all).
pub async fn leftovers(docker: &Docker, run: Option<&str>) -> Result<Leftovers> {
    let filter = match run {
        Some(r) => format!("{RUN_LABEL}={r}"),
        None => RUN_LABEL.to_string(),
    };
    let filters = HashMap::from([("label", vec![filter])]);
    let containers = list_containers(docker, run)
        .await?
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filters).build(),
        ))
        .await?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    Ok(Leftovers {
        containers,
        networks,
        volumes,
    })
}

/// Removes what one run (or, with `None`, every run) left: containers first,
/// then networks and volumes, then the state directories.
pub async fn reap(docker: &Docker, run: Option<&str>) -> Result<Leftovers> {
    if let Some(r) = run {
        check_run_id(r)?;
    }
    let found = leftovers(docker, run).await?;
    // (run, state directory) once each: every host of a run names the same.
    let state_dirs: std::collections::BTreeSet<(String, String)> = list_containers(docker, run)
        .await?
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels?;
            Some((
                labels.get(RUN_LABEL)?.clone(),
                labels.get(STATE_LABEL)?.clone(),
            ))
        })
        .collect();
    // A run killed (or interrupted) mid-boot may still have container
    // creates in flight in the engine: they finish after the client is gone
    // (each copies the image's /var/lib into its volume first), so a
    // container can appear after the listing and hold its volume ("volume
    // is in use"). Each pass removes what it lists; the reap ends when a
    // listing is empty, or fails with the last error after its deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all = found.clone();
    let mut pass = found.clone();
    loop {
        let res = remove_listed(docker, &pass).await;
        let now = leftovers(docker, run).await?;
        if now.is_empty() {
            res?;
            break;
        }
        if Instant::now() >= deadline {
            res?;
            bail!("labelled resources are still left after 60s: {now:?}");
        }
        for c in &now.containers {
            if !all.containers.contains(c) {
                all.containers.push(c.clone());
            }
        }
        for v in &now.volumes {
            if !all.volumes.contains(v) {
                all.volumes.push(v.clone());
            }
        }
        for n in &now.networks {
            if !all.networks.contains(n) {
                all.networks.push(n.clone());
            }
        }
        pass = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let found = all;
    // Only a run's own directory under `runs/` of this home or of another
    // marked ke2lab home is deleted, whatever a label says.
    let home = home();
    for (r, d) in state_dirs {
        remove_state_dir(&home, Path::new(&d), &r);
    }
    if let Some(r) = run {
        remove_state_dir(&home, &home.join("runs").join(r), r);
    }
    Ok(found)
}

/// Removes the listed containers, then networks, then volumes.
async fn remove_listed(docker: &Docker, found: &Leftovers) -> Result<()> {
    try_join_all(found.containers.iter().map(|id| async move {
        docker
            .remove_container(
                id,
                Some(
                    RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await
            .or_else(ignore_missing)
            .with_context(|| format!("cannot remove container `{id}`"))
    }))
    .await?;
    for n in &found.networks {
        docker
            .remove_network(n)
            .await
            .or_else(ignore_missing)
            .with_context(|| format!("cannot remove network `{n}`"))?;
    }
    for v in &found.volumes {
        docker
            .remove_volume(
                v,
                Some(RemoveVolumeOptionsBuilder::new().force(true).build()),
            )
            .await
            .or_else(ignore_missing)
            .with_context(|| format!("cannot remove volume `{v}`"))?;
    }
    Ok(())
}

fn ignore_missing(e: bollard::errors::Error) -> Result<(), bollard::errors::Error> {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => Ok(()),
        e => Err(e),
    }
}

/// Removes one run.
pub async fn down_run(docker: &Docker, run: &str) -> Result<()> {
    reap(docker, Some(run)).await.map(|_| ())
}

/// Where each host's volume is mounted: its data disk (the engine's
/// storage, PGDATA, the WAL archive, glusterd's state).
pub const HOST_DISK: &str = "/var/lib";

/// Memory in use per host container (usage less page cache, as `docker stats`
/// shows it), in bytes.
pub async fn memory(lab: &Lab) -> Result<Vec<(String, u64)>> {
    use bollard::query_parameters::StatsOptionsBuilder;
    use futures_util::StreamExt;
    let mut out = Vec::new();
    for h in &lab.hosts {
        let mut s = lab.docker.stats(
            h.container(),
            Some(
                StatsOptionsBuilder::new()
                    .stream(false)
                    .one_shot(true)
                    .build(),
            ),
        );
        let stats = s
            .next()
            .await
            .ok_or_else(|| anyhow!("no stats for `{}`", h.name()))??;
        let m = stats.memory_stats.unwrap_or_default();
        let cache = m
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("total_inactive_file")
                    .or(s.get("inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        out.push((
            h.name().to_string(),
            m.usage.unwrap_or(0).saturating_sub(cache),
        ));
    }
    Ok(out)
}

/// Whether a failing scenario keeps its hosts (`KE2LAB_KEEP_ON_FAILURE=1`).
pub fn keep_on_failure() -> bool {
    matches!(
        std::env::var("KE2LAB_KEEP_ON_FAILURE").as_deref(),
        Ok("1" | "true" | "yes")
    )
}

impl Lab {
    /// Ends a scenario. On failure, collects the evidence first (the hosts
    /// as the fault left them), then, unless keeping was asked for, undoes
    /// every fault still in force and removes the lab. Kept hosts keep their
    /// faults too, and how to reach them is printed.
    pub async fn finish<T>(self, outcome: Result<T>) -> Result<T> {
        self.finish_with(outcome, keep_on_failure()).await
    }

    /// [`Lab::finish`] with keeping decided by the caller.
    pub async fn finish_with<T>(self, outcome: Result<T>, keep: bool) -> Result<T> {
        let mut evidence = None;
        if let Err(e) = &outcome {
            self.events.record(format!("failure: {e:#}"));
            match crate::artifacts::collect(&self).await {
                Ok(dir) => {
                    eprintln!(
                        "failure evidence of run `{}` in `{}`",
                        self.run,
                        dir.display()
                    );
                    evidence = Some(dir);
                }
                Err(e) => eprintln!("cannot collect failure evidence: {e:#}"),
            }
        }
        if outcome.is_err() && keep {
            let active = Faults::new(&self).active();
            if !active.is_empty() {
                eprintln!("faults still in force on the kept hosts: {active:?}");
            }
            eprintln!(
                "scenario failed; hosts of run `{}` kept: `ke2lab exec --run {} {} -- sh`, \
                 `ke2lab down --run {}` when done",
                self.run, self.run, self.topology.hosts[0].name, self.run
            );
            return outcome;
        }
        let undone = Faults::new(&self).undo_all().await;
        if let Err(e) = &undone {
            self.events.record(format!("teardown: {e:#}"));
        }
        if self.stack_deployed {
            // `docker stack rm` as the procedure stops Kompira; best effort,
            // since removing the hosts removes the stack anyway.
            let hosts = self.hosts();
            let cx = Cx::new(&self.topology, &hosts);
            match ke2lab::install::remove_stack(&cx, 0, Duration::from_secs(60)).await {
                Ok(()) => self.events.record("teardown: `docker stack rm ke2` done"),
                Err(e) => self
                    .events
                    .record(format!("teardown: `docker stack rm`: {e}")),
            };
        }
        if let Some(dir) = evidence {
            // The undoing belongs to the evidence's timeline too.
            crate::artifacts::write_events(&self, &dir).ok();
        }
        let docker = self.docker.clone();
        let run = self.run.clone();
        self.teardown().await?;
        let left = leftovers(&docker, Some(&run)).await?;
        if !left.is_empty() {
            bail!("teardown of run `{run}` left labelled resources: {left:?}");
        }
        // A fault that could not be undone is reported only when the
        // scenario itself passed: its own failure is the news otherwise.
        match outcome {
            Ok(v) => undone.map(|_| v),
            Err(e) => Err(e),
        }
    }
}

/// The first SIGINT or SIGTERM this process receives: 130 or 143, the
/// shell's codes for them (never, where the handlers cannot be installed).
pub async fn interrupt() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    }
}

/// A topology file, validated as `ke2lab up --topology` validates it: a
/// read error names the path itself, any other gets it as context (both
/// bad input, exit 2); the warnings are printed once.
pub fn load_topology(p: &std::path::Path) -> Result<ke2lab::topology::Validated> {
    use ke2lab::topology::TopologyError;
    let v = Topology::load(p).map_err(|e| match e {
        TopologyError::Read { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(format!("topology `{}`", p.display())),
    })?;
    for w in &v.warnings {
        crate::console::warn(&w.to_string());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology::from_toml_str(include_str!("../../fixtures/topologies/three-node.toml"))
            .unwrap()
            .topology
    }

    #[test]
    fn run_ids_are_exactly_what_new_run_id_makes() {
        for _ in 0..1000 {
            let id = new_run_id();
            assert!(is_run_id(&id), "{id}");
        }
        for good in ["r000000", "rabcdef", "r1a2b3c"] {
            assert!(check_run_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/",
            "../x",
            "a/b",
            "/tmp/r123456",
            "r12345",
            "r1234567",
            "R123456",
            "r12345G",
            "r12345g",
            "x123456",
            "r12 456",
            "r123\n56",
            "r/../..",
            "..",
            ".",
        ] {
            assert!(!is_run_id(bad), "{bad:?}");
        }
        assert_eq!(
            check_run_id("../x").unwrap_err().to_string(),
            "`--run`: invalid run id `../x` (expected `r` and 6 lowercase hex digits, \
             as `ke2lab up` prints, e.g. `r1a2b3c`)"
        );
        assert_eq!(
            check_run_id("r\u{1b}[2J").unwrap_err().to_string(),
            "`--run`: invalid run id `r\\u{1b}[2J` (expected `r` and 6 lowercase hex digits, \
             as `ke2lab up` prints, e.g. `r1a2b3c`)"
        );
    }

    #[test]
    fn remap_keeps_offsets() {
        let t = remap(&topo(), Ipv4Addr::new(172, 30, 5, 0));
        let addrs: Vec<String> = t.hosts.iter().map(|h| h.address.to_string()).collect();
        assert_eq!(addrs, ["172.30.5.1", "172.30.5.2", "172.30.5.3"]);
        assert_eq!(t.network.vip, Ipv4Addr::new(172, 30, 5, 100));
        assert_eq!(
            pick_gateway(&t, Ipv4Addr::new(172, 30, 5, 0)).unwrap(),
            Ipv4Addr::new(172, 30, 5, 254)
        );
        assert!(t.validate().is_ok());
    }

    #[test]
    fn candidates_avoid_inner_engine_ranges_and_stay_aligned() {
        let c = subnet_candidates(24, "r123456");
        assert!(!c.is_empty());
        for a in &c {
            let o = a.octets();
            assert_eq!(o[0], 172);
            assert!((16..32).contains(&o[1]) && o[1] != 17 && o[1] != 18);
            assert_eq!(o[3], 0);
        }
        assert_ne!(
            subnet_candidates(24, "ra")[0],
            subnet_candidates(24, "rb")[0]
        );
    }
}
