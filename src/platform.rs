//! Per-OS facts: how each platform family installs and starts things, and
//! which firewall it has. Steps ask the platform instead of branching on it.

use crate::host::Cmd;
pub use crate::topology::Platform;

impl Platform {
    /// Commands that install the Docker engine and the compose plugin, as the
    /// document gives them (rhel9) or from the distribution (debian).
    pub fn docker_install(self) -> Vec<Cmd> {
        match self {
            Platform::Rhel9 => vec![
                Cmd::new(["dnf", "-y", "install", "dnf-plugins-core"]),
                Cmd::new([
                    "dnf",
                    "config-manager",
                    "--add-repo",
                    "https://download.docker.com/linux/rhel/docker-ce.repo",
                ]),
                Cmd::new([
                    "dnf",
                    "-y",
                    "install",
                    "docker-ce",
                    "docker-ce-cli",
                    "containerd.io",
                    "docker-compose-plugin",
                ]),
            ],
            Platform::Debian => apt_install(&["docker.io", "docker-cli", "docker-compose"]),
        }
    }

    /// Enables and starts a service. Debian hosts without systemd (the lab's
    /// container hosts) fall back to the package's init script.
    pub fn start_service(self, unit: &str) -> Cmd {
        match self {
            Platform::Rhel9 => Cmd::new(["systemctl", "enable", "--now", unit]),
            Platform::Debian => Cmd::sh(
                "if [ -d /run/systemd/system ]; then systemctl enable --now \"$1\"; \
                 else service \"$1\" start; fi",
            )
            .arg(unit),
        }
    }

    /// Whether the platform's firewall is firewalld (managed by the steps).
    /// Debian servers have no firewall by default; the procedure manages none.
    pub fn has_firewalld(self) -> bool {
        matches!(self, Platform::Rhel9)
    }

    /// Commands that install the Gluster server (and with it the CLI and the
    /// FUSE client): the document's CentOS Storage SIG release package first
    /// on rhel9, the distribution's packages on Debian.
    pub fn gluster_install(self) -> Vec<Cmd> {
        match self {
            Platform::Rhel9 => vec![
                Cmd::new(["dnf", "-y", "install", "centos-release-gluster10"]),
                Cmd::new(["dnf", "-y", "install", "glusterfs-server"]),
            ],
            Platform::Debian => apt_install(&["glusterfs-server", "glusterfs-client"]),
        }
    }

    /// Enables and starts glusterd. Debian's package ships only a systemd
    /// unit (no init script in trixie; older releases called the script
    /// `glusterfs-server`), so a Debian host without systemd, like the lab's
    /// container hosts, starts the daemon itself. `glusterd` daemonizes, but
    /// its first process waits for the daemon's initialisation (3-6 s in the
    /// lab, mostly geo-replication probing); it is left to finish in the
    /// background so that the hosts initialise in parallel, and whoever
    /// needs the daemon waits for it to answer.
    pub fn start_glusterd(self) -> Cmd {
        match self {
            Platform::Rhel9 => self.start_service("glusterd"),
            Platform::Debian => Cmd::sh(
                "if [ -d /run/systemd/system ]; then systemctl enable --now glusterd; \
                 elif [ -x /etc/init.d/glusterd ]; then service glusterd start; \
                 elif [ -x /etc/init.d/glusterfs-server ]; then service glusterfs-server start; \
                 else glusterd </dev/null >/dev/null 2>&1 & fi",
            ),
        }
    }
}

/// `apt-get update`, then installing `packages`: every Debian install step.
pub(crate) fn apt_install(packages: &[&str]) -> Vec<Cmd> {
    vec![
        Cmd::new(["apt-get", "update"]),
        Cmd::new(["apt-get", "install", "-y"]).args_from(packages.iter().copied()),
    ]
}
