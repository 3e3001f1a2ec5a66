//! Fault injection, verbs in pairs: what a scenario breaks it can also mend,
//! and every injected fault is recorded so teardown can undo what is left.

use std::time::Instant;

use anyhow::{Context, Result};
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
    Dockerd,
}

impl Service {
    /// The process name `pkill -x` matches.
    fn process(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Pgpool => "pgpool",
            Service::Glusterd => "glusterd",
            Service::Dockerd => "dockerd",
        }
    }
}

/// One injected fault, with when it happened (for the event log).
#[derive(Clone, Debug)]
pub struct Event {
    pub at: Instant,
    pub what: String,
}

/// The fault injector of a lab.
pub struct Faults<'a> {
    lab: &'a Lab,
    pub events: Vec<Event>,
}

impl<'a> Faults<'a> {
    pub fn new(lab: &'a Lab) -> Self {
        Faults {
            lab,
            events: Vec::new(),
        }
    }

    fn record(&mut self, what: String) -> Instant {
        let at = Instant::now();
        eprintln!("fault: {what}");
        self.events.push(Event {
            at,
            what: what.clone(),
        });
        at
    }

    /// Kills a service's processes with SIGKILL, as a crash would; returns
    /// the moment of the kill.
    pub async fn kill_service(&mut self, host: &str, s: Service) -> Result<Instant> {
        let h = self.lab.host(host)?;
        let at = self.record(format!("kill {s:?} on `{host}`"));
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
        self.record(format!("start {s:?} on `{host}`"));
        let cmd = match s {
            Service::Postgres => l.pg_start(),
            Service::Pgpool => l.pgpool_start(),
            Service::Glusterd => spec.platform.start_glusterd(),
            Service::Dockerd => Cmd::sh(
                "setsid /usr/sbin/dockerd --storage-driver overlay2 >>/var/log/dockerd.log 2>&1 </dev/null &",
            ),
        };
        cmd.check(h.as_ref()).await?;
        Ok(())
    }

    /// Stops a host's container (the machine goes away).
    pub async fn stop(&mut self, host: &str) -> Result<Instant> {
        let at = self.record(format!("stop host `{host}`"));
        let c = self.lab.container_of(host)?;
        self.lab
            .docker()
            .stop_container(&c, Some(StopContainerOptionsBuilder::new().t(0).build()))
            .await
            .with_context(|| format!("cannot stop host `{host}`"))?;
        Ok(at)
    }

    /// Starts a stopped host; its boot script runs again as on a reboot.
    pub async fn start(&mut self, host: &str) -> Result<()> {
        self.record(format!("start host `{host}`"));
        let c = self.lab.container_of(host)?;
        self.lab
            .docker()
            .start_container(&c, None::<StartContainerOptions>)
            .await
            .with_context(|| format!("cannot start host `{host}`"))?;
        Ok(())
    }

    /// The VMware vmxnet3 model: on every host, VXLAN frames on UDP `port`
    /// whose inner IP protocol is TCP are dropped, ICMP passes (the field
    /// symptom, not just a closed port). Byte 39 after the UDP header is the
    /// inner IPv4 protocol (UDP 8 + VXLAN 8 + Ethernet 14 + 9), bit 312.
    pub async fn drop_vxlan_tcp(&mut self, port: u16) -> Result<()> {
        self.record(format!(
            "drop TCP inside VXLAN on udp/{port} (vmxnet3 model)"
        ));
        for h in self.lab.hosts() {
            Cmd::sh(
                "nft add table inet ke2lab && \
                 nft add chain inet ke2lab out '{ type filter hook output priority 0 ; }' && \
                 nft add rule inet ke2lab out udp dport \"$1\" @th,312,8 6 drop",
            )
            .arg(port.to_string())
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot inject the vmxnet3 model on `{}`", h.name()))?;
        }
        Ok(())
    }

    /// Undoes [`Faults::drop_vxlan_tcp`].
    pub async fn restore_vxlan(&mut self, port: u16) -> Result<()> {
        self.record(format!("restore VXLAN on udp/{port}"));
        for h in self.lab.hosts() {
            h.run(&Cmd::new(["nft", "delete", "table", "inet", "ke2lab"]))
                .await?;
        }
        Ok(())
    }
}
