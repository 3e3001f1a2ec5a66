//! Fault injection, verbs in pairs: what a scenario breaks it can also mend.
//! Every fault goes into the lab's event log with its time, and stays in the
//! lab's list of active faults until its pair undoes it, so that teardown
//! can undo whatever a failing scenario left behind.

use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use bollard::query_parameters::{StartContainerOptions, StopContainerOptionsBuilder};
use ke2lab::host::Cmd;
use ke2lab::layout::Layout;

use crate::lab::Lab;

/// A service of a host that a fault can kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Pgpool,
    Glusterd,
    /// The host's Gluster brick processes (`glusterfsd`).
    Brick,
    Dockerd,
}

impl Service {
    /// The process name `pkill -x` matches.
    fn process(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Pgpool => "pgpool",
            Service::Glusterd => "glusterd",
            Service::Brick => "glusterfsd",
            Service::Dockerd => "dockerd",
        }
    }
}

/// A fault in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Stopped(String),
    Paused(String),
    Killed(String, Service),
    /// Two sides that cannot reach each other.
    Partition(Vec<String>, Vec<String>),
    VxlanTcpDropped(u16),
}

/// The nftables table of a partition (one per host, whatever the sides).
const PARTITION_TABLE: &str = "ke2lab_partition";
/// The nftables table of the vmxnet3 model.
const VXLAN_TABLE: &str = "ke2lab";

/// The fault injector of a lab.
pub struct Faults<'a> {
    lab: &'a Lab,
}

impl<'a> Faults<'a> {
    pub fn new(lab: &'a Lab) -> Self {
        Faults { lab }
    }

    fn inject(&self, f: Fault, what: String) -> Instant {
        eprintln!("fault: {what}");
        let at = self.lab.events.record(format!("fault: {what}"));
        self.lab.active_faults.lock().unwrap().push(f);
        at
    }

    fn mend(&self, f: &Fault, what: String) -> Instant {
        eprintln!("repair: {what}");
        let at = self.lab.events.record(format!("repair: {what}"));
        self.lab.active_faults.lock().unwrap().retain(|x| x != f);
        at
    }

    /// Records that something other than its pair mended `f` (a
    /// re-provision restarted a killed service, say), so teardown leaves it.
    pub fn mended(&self, f: &Fault, how: &str) {
        self.mend(f, format!("{f:?} mended: {how}"));
    }

    /// The faults in force now, oldest first.
    pub fn active(&self) -> Vec<Fault> {
        self.lab.active_faults.lock().unwrap().clone()
    }

    /// Kills a service's processes with SIGKILL, as a crash would; returns
    /// the moment of the kill.
    pub async fn kill_service(&mut self, host: &str, s: Service) -> Result<Instant> {
        let h = self.lab.host(host)?;
        let at = self.inject(
            Fault::Killed(host.into(), s),
            format!("kill {s:?} on `{host}`"),
        );
        Cmd::new(["pkill", "-KILL", "-x", s.process()])
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot kill {s:?} on `{host}`"))?;
        Ok(at)
    }

    /// Starts a killed service again as the host's service manager would.
    pub async fn start_service(&mut self, host: &str, s: Service) -> Result<()> {
        let h = self.lab.host(host)?;
        let spec = self
            .lab
            .topology
            .host(host)
            .with_context(|| format!("no host `{host}`"))?;
        let l = Layout::of(spec.platform);
        self.mend(
            &Fault::Killed(host.into(), s),
            format!("start {s:?} on `{host}`"),
        );
        let cmd = match s {
            Service::Postgres => l.pg_start(),
            Service::Pgpool => l.pgpool_start(),
            Service::Glusterd => spec.platform.start_glusterd(),
            // glusterd respawns a started volume's missing bricks on `start
            // force`; it changes nothing where they run.
            Service::Brick => Cmd::new(["gluster", "--mode=script", "volume", "start"])
                .arg(self.lab.topology.shared_dir.volume.clone())
                .arg("force"),
            Service::Dockerd => Cmd::sh(
                "setsid /usr/sbin/dockerd --storage-driver overlay2 >>/var/log/dockerd.log 2>&1 </dev/null &",
            ),
        };
        cmd.check(h.as_ref())
            .await
            .with_context(|| format!("cannot start {s:?} on `{host}`"))?;
        Ok(())
    }

    /// Stops a host's container (the machine goes away).
    pub async fn stop(&mut self, host: &str) -> Result<Instant> {
        let c = self.lab.container_of(host)?;
        let at = self.inject(Fault::Stopped(host.into()), format!("stop host `{host}`"));
        self.lab
            .docker()
            .stop_container(&c, Some(StopContainerOptionsBuilder::new().t(0).build()))
            .await
            .with_context(|| format!("cannot stop host `{host}`"))?;
        Ok(at)
    }

    /// Starts a stopped host; its boot script runs again as on a reboot.
    pub async fn start(&mut self, host: &str) -> Result<()> {
        let c = self.lab.container_of(host)?;
        self.mend(&Fault::Stopped(host.into()), format!("start host `{host}`"));
        self.lab
            .docker()
            .start_container(&c, None::<StartContainerOptions>)
            .await
            .with_context(|| format!("cannot start host `{host}`"))?;
        Ok(())
    }

    /// Freezes every process of a host (cgroup freezer): the machine hangs
    /// without going away, its connections time out instead of closing.
    pub async fn pause(&mut self, host: &str) -> Result<Instant> {
        let c = self.lab.container_of(host)?;
        let at = self.inject(Fault::Paused(host.into()), format!("pause host `{host}`"));
        self.lab
            .docker()
            .pause_container(&c)
            .await
            .with_context(|| format!("cannot pause host `{host}`"))?;
        Ok(at)
    }

    /// Thaws a paused host.
    pub async fn unpause(&mut self, host: &str) -> Result<()> {
        let c = self.lab.container_of(host)?;
        self.mend(
            &Fault::Paused(host.into()),
            format!("unpause host `{host}`"),
        );
        self.lab
            .docker()
            .unpause_container(&c)
            .await
            .with_context(|| format!("cannot unpause host `{host}`"))?;
        Ok(())
    }

    /// Cuts every host of `a` from every host of `b`, both ways, as a
    /// switch failure would: packets are dropped (not rejected), so peers
    /// see timeouts. Each host drops what goes to or comes from the other
    /// side's addresses in an nftables table of its own; traffic inside a
    /// side and to the lab's gateway (the test process) still flows.
    pub async fn partition(&mut self, a: &[&str], b: &[&str]) -> Result<Instant> {
        if a.is_empty() || b.is_empty() || a.iter().any(|x| b.contains(x)) {
            return Err(anyhow!(
                "a partition needs two disjoint, non-empty sides, not `{a:?}` and `{b:?}`"
            ));
        }
        let addr = |n: &str| -> Result<String> {
            Ok(self
                .lab
                .topology
                .host(n)
                .ok_or_else(|| anyhow!("the lab has no host `{n}`"))?
                .address
                .to_string())
        };
        let mut plan = Vec::new();
        for (mine, theirs) in [(a, b), (b, a)] {
            let others = theirs
                .iter()
                .map(|n| addr(n))
                .collect::<Result<Vec<_>>>()?
                .join(", ");
            for h in mine {
                plan.push((self.lab.host(h)?, others.clone()));
            }
        }
        let at = self.inject(
            Fault::Partition(
                a.iter().map(|s| s.to_string()).collect(),
                b.iter().map(|s| s.to_string()).collect(),
            ),
            format!("partition {a:?} from {b:?}"),
        );
        for (h, others) in plan {
            Cmd::sh(format!(
                "nft add table inet {PARTITION_TABLE} && \
                 nft add chain inet {PARTITION_TABLE} in '{{ type filter hook input priority -10 ; }}' && \
                 nft add chain inet {PARTITION_TABLE} out '{{ type filter hook output priority -10 ; }}' && \
                 nft add rule inet {PARTITION_TABLE} in ip saddr '{{ '\"$1\"' }}' drop && \
                 nft add rule inet {PARTITION_TABLE} out ip daddr '{{ '\"$1\"' }}' drop"
            ))
            .arg(others)
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot partition `{}`", h.name()))?;
        }
        Ok(at)
    }

    /// Ends every partition: each host involved drops its partition table.
    pub async fn repair(&mut self) -> Result<Instant> {
        let parts: Vec<Fault> = self
            .active()
            .into_iter()
            .filter(|f| matches!(f, Fault::Partition(..)))
            .collect();
        let mut hosts: Vec<String> = Vec::new();
        for p in &parts {
            if let Fault::Partition(a, b) = p {
                for h in a.iter().chain(b) {
                    if !hosts.contains(h) {
                        hosts.push(h.clone());
                    }
                }
            }
        }
        let mut at = Instant::now();
        for p in &parts {
            at = self.mend(p, format!("repair the partition {p:?}"));
        }
        for n in hosts {
            let h = self.lab.host(&n)?;
            Cmd::sh(format!(
                "! nft list table inet {PARTITION_TABLE} >/dev/null 2>&1 || nft delete table inet {PARTITION_TABLE}"
            ))
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot repair the partition on `{n}`"))?;
        }
        Ok(at)
    }

    /// The VMware vmxnet3 model: on every host, VXLAN frames on UDP `port`
    /// whose inner IP protocol is TCP are dropped, ICMP passes (the field
    /// symptom, not just a closed port). Byte 39 after the UDP header is the
    /// inner IPv4 protocol (UDP 8 + VXLAN 8 + Ethernet 14 + 9), bit 312.
    pub async fn drop_vxlan_tcp(&mut self, port: u16) -> Result<()> {
        self.inject(
            Fault::VxlanTcpDropped(port),
            format!("drop TCP inside VXLAN on udp/{port} (vmxnet3 model)"),
        );
        for h in self.lab.hosts() {
            Cmd::sh(format!(
                "nft add table inet {VXLAN_TABLE} && \
                 nft add chain inet {VXLAN_TABLE} out '{{ type filter hook output priority 0 ; }}' && \
                 nft add rule inet {VXLAN_TABLE} out udp dport \"$1\" @th,312,8 6 drop"
            ))
            .arg(port.to_string())
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot inject the vmxnet3 model on `{}`", h.name()))?;
        }
        Ok(())
    }

    /// Undoes [`Faults::drop_vxlan_tcp`].
    pub async fn restore_vxlan(&mut self, port: u16) -> Result<()> {
        self.mend(
            &Fault::VxlanTcpDropped(port),
            format!("restore VXLAN on udp/{port}"),
        );
        for h in self.lab.hosts() {
            Cmd::sh(format!(
                "! nft list table inet {VXLAN_TABLE} >/dev/null 2>&1 || nft delete table inet {VXLAN_TABLE}"
            ))
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot restore VXLAN on `{}`", h.name()))?;
        }
        Ok(())
    }

    /// Undoes every fault still in force, newest first (a host is thawed or
    /// started before its partition is lifted, since lifting it needs the
    /// host to answer). Goes on past a failing undo and reports all of them.
    pub async fn undo_all(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        // Hosts first: every other undo runs commands on them.
        let mut active = self.active();
        active.sort_by_key(|f| !matches!(f, Fault::Paused(_) | Fault::Stopped(_)));
        let mut repaired = false;
        for f in active {
            let r = match &f {
                Fault::Paused(h) => self.unpause(h).await,
                Fault::Stopped(h) => self.start(h).await,
                Fault::Killed(h, s) => self.start_service(h, *s).await,
                Fault::VxlanTcpDropped(p) => self.restore_vxlan(*p).await,
                Fault::Partition(..) if repaired => Ok(()),
                Fault::Partition(..) => {
                    repaired = true;
                    self.repair().await.map(|_| ())
                }
            };
            if let Err(e) = r {
                errors.push(format!("{e:#}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("cannot undo every fault: {}", errors.join("; ")))
        }
    }
}
