//! Where PostgreSQL and Pgpool-II live on each platform family, and how their
//! services are started. Renderers and steps read paths from here instead of
//! branching on the platform.

use crate::host::Cmd;
use crate::topology::Platform;

/// Paths and service commands of PostgreSQL + Pgpool-II on one platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub platform: Platform,
    /// PostgreSQL's major version on this platform.
    pub pg_version: u32,
    pub pgdata: &'static str,
    /// The `postgresql.conf` PostgreSQL actually reads (Debian keeps it in
    /// `/etc`, outside PGDATA, so `pg_basebackup` does not carry it).
    pub pg_conf: &'static str,
    pub pg_hba: &'static str,
    pub pg_bin: &'static str,
    /// PostgreSQL's server log: on Debian the file `pg_ctlcluster` (and
    /// the HA scripts' `pg_ctl -l`) writes; on rhel9 the logging
    /// collector's directory in PGDATA (`log_directory = 'log'`).
    pub pg_log: &'static str,
    /// Whether [`Layout::pg_log`] is a directory of log files.
    pub pg_log_is_dir: bool,
    pub postgres_home: &'static str,
    pub pgpool_dir: &'static str,
    pub pgpool_log_dir: &'static str,
    /// GlusterFS's logs: `glusterd.log`, one client log per mount (named
    /// after the mount point) and the bricks' logs in `bricks/`.
    pub gluster_log_dir: &'static str,
    /// Where Pgpool-II and PostgreSQL put their Unix sockets.
    pub socket_dir: &'static str,
    pub ip_cmd: &'static str,
    pub arping_cmd: &'static str,
    pub sudo: &'static str,
    pub sudoers_file: &'static str,
}

impl Layout {
    pub fn of(platform: Platform) -> &'static Layout {
        match platform {
            Platform::Debian => &DEBIAN,
            Platform::Rhel9 => &RHEL9,
        }
    }

    pub fn pgpool_conf(&self) -> String {
        format!("{}/pgpool.conf", self.pgpool_dir)
    }

    pub fn pool_hba(&self) -> String {
        self.in_pgpool_dir("pool_hba.conf")
    }

    pub fn glusterd_log(&self) -> String {
        format!("{}/glusterd.log", self.gluster_log_dir)
    }

    /// The FUSE client's log of the volume mounted at `mount`: named after
    /// the mount point, `/mnt/gluster` → `mnt-gluster.log`.
    pub fn gluster_mount_log(&self, mount: &str) -> String {
        format!(
            "{}/{}.log",
            self.gluster_log_dir,
            mount.trim_matches('/').replace('/', "-")
        )
    }

    pub fn gluster_brick_logs(&self) -> String {
        format!("{}/bricks", self.gluster_log_dir)
    }

    pub fn in_pgpool_dir(&self, file: &str) -> String {
        format!("{}/{file}", self.pgpool_dir)
    }

    pub fn in_home(&self, file: &str) -> String {
        format!("{}/{file}", self.postgres_home)
    }

    pub fn in_pgdata(&self, file: &str) -> String {
        format!("{}/{file}", self.pgdata)
    }

    pub fn pg_tool(&self, tool: &str) -> String {
        format!("{}/{tool}", self.pg_bin)
    }

    /// The postgres user's key for passwordless ssh between hosts; absolute,
    /// because `$HOME` is unset inside a backend running the recovery scripts.
    pub fn ssh_key(&self) -> String {
        self.in_home(".ssh/id_rsa_pgpool")
    }

    /// Starts PostgreSQL (and enables it at boot where a service manager exists).
    pub fn pg_start(&self) -> Cmd {
        match self.platform {
            // pg_ctlcluster defers to systemd where it runs and starts the
            // cluster itself where it does not (the lab's hosts).
            Platform::Debian => Cmd::new(["pg_ctlcluster", "17", "main", "start"]),
            Platform::Rhel9 => Cmd::new(["systemctl", "enable", "--now", "postgresql-16"]),
        }
    }

    pub fn pg_stop(&self) -> Cmd {
        match self.platform {
            Platform::Debian => Cmd::new(["pg_ctlcluster", "17", "main", "stop", "-m", "fast"]),
            Platform::Rhel9 => Cmd::new(["systemctl", "stop", "postgresql-16"]),
        }
    }

    pub fn pg_restart(&self) -> Cmd {
        match self.platform {
            Platform::Debian => Cmd::new(["pg_ctlcluster", "17", "main", "restart", "-m", "fast"]),
            Platform::Rhel9 => Cmd::new(["systemctl", "restart", "postgresql-16"]),
        }
    }

    /// Exit 0 when PostgreSQL accepts connections on its socket.
    /// On the topology's `port`: the socket's name carries it
    /// (`.s.PGSQL.<port>`), so without it a non-default port is never ready.
    pub fn pg_isready(&self, port: u16) -> Cmd {
        // As postgres: an unnamed user would be root, which the server logs
        // as a failed login on every probe.
        Cmd::new([
            self.pg_tool("pg_isready"),
            "-q".into(),
            "-U".into(),
            "postgres".into(),
            "-h".into(),
            self.socket_dir.into(),
            "-p".into(),
            port.to_string(),
        ])
    }

    /// Creates the cluster when PGDATA has no `PG_VERSION`.
    pub fn pg_initdb(&self) -> Cmd {
        match self.platform {
            Platform::Debian => Cmd::new(["pg_createcluster", "17", "main"]),
            Platform::Rhel9 => Cmd::new(["/usr/pgsql-16/bin/postgresql-16-setup", "initdb"]),
        }
    }

    /// Starts Pgpool-II. Debian without systemd (the lab) runs the daemon
    /// directly as postgres: the package's init script logs to a syslog that
    /// is not there.
    pub fn pgpool_start(&self) -> Cmd {
        match self.platform {
            Platform::Debian => Cmd::sh(
                "if [ -d /run/systemd/system ]; then systemctl enable --now pgpool2; \
                 else runuser -u postgres -- pgpool -f \"$1\"; fi",
            )
            .arg(self.pgpool_conf()),
            Platform::Rhel9 => Cmd::new(["systemctl", "enable", "--now", "pgpool-II"]),
        }
    }

    /// Restarts Pgpool-II (a watchdog member rejoins, and so copies the
    /// leader's backend status). Without systemd: a fast stop, which waits
    /// for the old process to end, then the same start as [`Self::pgpool_start`].
    pub fn pgpool_restart(&self) -> Cmd {
        match self.platform {
            Platform::Debian => Cmd::sh(
                "if [ -d /run/systemd/system ]; then systemctl restart pgpool2; \
                 else runuser -u postgres -- pgpool -f \"$1\" -m fast stop; \
                 runuser -u postgres -- pgpool -f \"$1\"; fi",
            )
            .arg(self.pgpool_conf()),
            Platform::Rhel9 => Cmd::new(["systemctl", "restart", "pgpool-II"]),
        }
    }

    /// Exit 0 when a Pgpool-II main process runs.
    pub fn pgpool_running(&self) -> Cmd {
        Cmd::new(["pgrep", "-x", "-u", "postgres", "pgpool"])
    }

    /// Commands that install PostgreSQL and Pgpool-II (rhel9 per the
    /// document; Debian from the distribution).
    pub fn pg_install(&self) -> Vec<Cmd> {
        match self.platform {
            Platform::Debian => crate::platform::apt_install(&[
                "postgresql-17",
                "pgpool2",
                "postgresql-17-pgpool2",
                "iputils-arping",
                "sudo",
            ]),
            Platform::Rhel9 => vec![
                Cmd::new([
                    "dnf",
                    "-y",
                    "install",
                    "https://download.postgresql.org/pub/repos/yum/reporpms/EL-9-x86_64/pgdg-redhat-repo-latest.noarch.rpm",
                ]),
                Cmd::new(["dnf", "config-manager", "--set-enabled", "crb"]),
                Cmd::new(["dnf", "-qy", "module", "disable", "postgresql"]),
                Cmd::new([
                    "dnf",
                    "-y",
                    "install",
                    "postgresql16-server",
                    "postgresql16-contrib",
                ]),
                Cmd::new([
                    "dnf",
                    "-y",
                    "install",
                    "https://www.pgpool.net/yum/rpms/4.5/redhat/rhel-9-x86_64/pgpool-II-release-4.5-1.noarch.rpm",
                ]),
                Cmd::new([
                    "dnf",
                    "-y",
                    "install",
                    "--disablerepo=pgdg*",
                    "pgpool-II-pg16-extensions",
                    "pgpool-II-pg16",
                ]),
            ],
        }
    }
}

static DEBIAN: Layout = Layout {
    platform: Platform::Debian,
    pg_version: 17,
    pgdata: "/var/lib/postgresql/17/main",
    pg_conf: "/etc/postgresql/17/main/postgresql.conf",
    pg_hba: "/etc/postgresql/17/main/pg_hba.conf",
    pg_bin: "/usr/lib/postgresql/17/bin",
    pg_log: "/var/log/postgresql/postgresql-17-main.log",
    pg_log_is_dir: false,
    postgres_home: "/var/lib/postgresql",
    pgpool_dir: "/etc/pgpool2",
    pgpool_log_dir: "/var/log/pgpool_log",
    gluster_log_dir: "/var/log/glusterfs",
    socket_dir: "/var/run/postgresql",
    ip_cmd: "/sbin/ip",
    arping_cmd: "/usr/bin/arping",
    sudo: "/usr/bin/sudo",
    sudoers_file: "/etc/sudoers.d/ke2-pgpool",
};

static RHEL9: Layout = Layout {
    platform: Platform::Rhel9,
    pg_version: 16,
    pgdata: "/var/lib/pgsql/16/data",
    pg_conf: "/var/lib/pgsql/16/data/postgresql.conf",
    pg_hba: "/var/lib/pgsql/16/data/pg_hba.conf",
    pg_bin: "/usr/pgsql-16/bin",
    pg_log: "/var/lib/pgsql/16/data/log",
    pg_log_is_dir: true,
    postgres_home: "/var/lib/pgsql",
    pgpool_dir: "/etc/pgpool-II",
    pgpool_log_dir: "/var/log/pgpool_log",
    gluster_log_dir: "/var/log/glusterfs",
    socket_dir: "/var/run/postgresql",
    ip_cmd: "/sbin/ip",
    arping_cmd: "/usr/sbin/arping",
    sudo: "/usr/bin/sudo",
    sudoers_file: "/etc/sudoers.d/ke2-pgpool",
};
