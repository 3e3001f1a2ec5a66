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
            Platform::Debian => vec![
                Cmd::new(["apt-get", "update"]),
                Cmd::new([
                    "apt-get",
                    "install",
                    "-y",
                    "docker.io",
                    "docker-cli",
                    "docker-compose",
                ]),
            ],
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
}
