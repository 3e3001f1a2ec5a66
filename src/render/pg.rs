//! PostgreSQL and Pgpool-II configuration text (PROCEDURE.md step 5): the
//! KE2 blocks of `postgresql.conf`, `pg_hba.conf`, `pgpool.conf` and
//! `pool_hba.conf`, the backends include file, the `pcp.conf` line,
//! `.pgpass`, `.pcppass` and the sudoers entry for the VIP commands.

use std::fmt::Write as _;

use super::conf_quote;
use crate::layout::Layout;
use crate::topology::{Credentials, Topology};

/// Pgpool-II's values that the document fixes (not topology options).
pub const NUM_INIT_CHILDREN: u32 = 64;
pub const MAX_WAL_SENDERS: u32 = 10;
pub const MAX_REPLICATION_SLOTS: u32 = 10;
/// The backends file the `pgpool.conf` block includes.
pub const BACKENDS_FILE: &str = "ke2-backends.conf";

/// What every renderer of this module needs.
pub struct PgParams<'a> {
    pub topology: &'a Topology,
    pub layout: &'a Layout,
    /// The interface that carries the VIP and its prefix length.
    pub interface: &'a str,
    pub prefix: u8,
    /// The host's node id (its place in the host list): what a per-host
    /// setting (`wd_priority`) is rendered from.
    pub node: usize,
}

/// The `synchronous_standby_names` value for the topology: any one standby
/// must confirm each commit, so one lost host still leaves one to confirm.
pub fn synchronous_standby_names(t: &Topology) -> String {
    let names = t
        .hosts
        .iter()
        .map(|h| format!("\"{}\"", h.name))
        .collect::<Vec<_>>()
        .join(",");
    format!("ANY 1 ({names})")
}

/// The KE2 block of `postgresql.conf`. Synchronous replication is not set
/// here: a primary that waits for a standby before any exists could not
/// even create its roles; the `pg-sync` step sets it once standbys stream.
pub fn postgresql_conf(p: &PgParams) -> String {
    let t = p.topology;
    let archive = format!("cp \"%p\" \"{}/%f\"", t.postgres.archive_dir);
    let mut s = String::new();
    let _ = writeln!(s, "listen_addresses = '*'");
    let _ = writeln!(s, "port = {}", t.ports.postgres);
    let _ = writeln!(s, "max_connections = {}", t.postgres.max_connections);
    let _ = writeln!(s, "wal_level = replica");
    let _ = writeln!(s, "wal_log_hints = on");
    let _ = writeln!(s, "archive_mode = off");
    let _ = writeln!(s, "archive_command = {}", conf_quote(&archive));
    let _ = writeln!(s, "max_wal_senders = {MAX_WAL_SENDERS}");
    let _ = writeln!(s, "max_replication_slots = {MAX_REPLICATION_SLOTS}");
    let _ = writeln!(s, "hot_standby = on");
    s
}

/// The KE2 block of `pg_hba.conf` (scram-sha-256 only).
pub fn pg_hba(p: &PgParams) -> String {
    let n = &p.topology.network;
    let db = &p.topology.postgres.database;
    let mut s = String::new();
    for (database, user, addr) in [
        ("all", "pgpool", n.cluster_hba.as_str()),
        ("all", "postgres", n.cluster_hba.as_str()),
        ("replication", "all", n.cluster_hba.as_str()),
        (db.as_str(), "kompira", n.kompira_hba.as_str()),
    ] {
        let _ = writeln!(
            s,
            "host    {database:<15} {user:<15} {addr:<18} scram-sha-256"
        );
    }
    s
}

/// The KE2 block of `pool_hba.conf`.
pub fn pool_hba(p: &PgParams) -> String {
    let n = &p.topology.network;
    let db = &p.topology.postgres.database;
    let mut s = String::new();
    for (database, user, addr) in [
        ("all", "pgpool", n.cluster_hba.as_str()),
        ("all", "postgres", n.cluster_hba.as_str()),
        (db.as_str(), "kompira", n.kompira_hba.as_str()),
    ] {
        let _ = writeln!(
            s,
            "host    {database:<15} {user:<15} {addr:<18} scram-sha-256"
        );
    }
    s
}

/// `ip addr add/del` and `arping` through sudo, as the watchdog runs them.
fn vip_commands(p: &PgParams) -> (String, String, String) {
    let l = p.layout;
    let (i, pre) = (p.interface, p.prefix);
    (
        format!(
            "{} {} addr add $_IP_$/{pre} dev {i} label {i}:0",
            l.sudo, l.ip_cmd
        ),
        format!("{} {} addr del $_IP_$/{pre} dev {i}", l.sudo, l.ip_cmd),
        format!("{} {} -U $_IP_$ -w 1 -I {i}", l.sudo, l.arping_cmd),
    )
}

/// The KE2 block of `pgpool.conf`.
pub fn pgpool_conf(p: &PgParams) -> String {
    let t = p.topology;
    let l = p.layout;
    let (up, down, arping) = vip_commands(p);
    let q = |s: &str| conf_quote(s);
    let mut lines: Vec<(&str, String)> = vec![
        ("listen_addresses", q("*")),
        ("port", t.ports.pgpool.to_string()),
        ("pcp_listen_addresses", q("*")),
        ("pcp_port", t.ports.pcp.to_string()),
        ("unix_socket_directories", q(l.socket_dir)),
        ("pcp_socket_dir", q(l.socket_dir)),
        // /run is empty at boot on hosts without systemd; the socket
        // directory is made by the steps, so the pid file goes there too.
        ("pid_file_name", q(&format!("{}/pgpool.pid", l.socket_dir))),
        ("enable_pool_hba", "on".into()),
        ("num_init_children", NUM_INIT_CHILDREN.to_string()),
        ("logging_collector", "on".into()),
        ("log_directory", q(l.pgpool_log_dir)),
        ("log_rotation_size", q("10MB")),
        ("load_balance_mode", "off".into()),
        ("sr_check_user", q("pgpool")),
        // Empty passwords make Pgpool-II read them from pool_passwd.
        ("sr_check_password", q("")),
        ("health_check_period", "5".into()),
        ("health_check_timeout", "30".into()),
        ("health_check_user", q("pgpool")),
        ("health_check_password", q("")),
        ("health_check_max_retries", "3".into()),
        (
            "failover_command",
            q(&format!(
                "{}/failover.sh %d %h %p %D %m %H %M %P %r %R %N %S",
                l.pgpool_dir
            )),
        ),
        (
            "follow_primary_command",
            q(&format!(
                "{}/follow_primary.sh %d %h %p %D %m %H %M %P %r %R",
                l.pgpool_dir
            )),
        ),
        ("recovery_user", q("postgres")),
        ("recovery_password", q("")),
        ("recovery_1st_stage_command", q("recovery_1st_stage")),
        ("use_watchdog", "on".into()),
        // The watchdog's consensus rules, stated so that a package whose
        // sample file changes them cannot change the cluster's behaviour:
        // failover only with quorum, decided by a majority of the members'
        // votes (each member one vote per failover; with an even count,
        // half is not enough), as the document's three hosts rely on.
        ("failover_when_quorum_exists", "on".into()),
        ("failover_require_consensus", "on".into()),
        ("allow_multiple_failover_requests_from_node", "off".into()),
        ("enable_consensus_with_half_votes", "off".into()),
        // Not in the document: after a partition heals, the watchdog's
        // split-brain resolution can pick the isolated old leader, whose
        // backend status (its own PostgreSQL primary) every member then
        // copies, so clients would be routed to the old, diverged primary
        // while the majority's promoted one runs too. With this, the
        // leader's streaming-replication check detaches a primary that no
        // standby follows when another primary has them all.
        ("detach_false_primary", "on".into()),
        ("delegate_ip", q(&t.network.vip.to_string())),
        ("if_up_cmd", q(&up)),
        ("if_down_cmd", q(&down)),
        ("arping_cmd", q(&arping)),
        (
            "wd_escalation_command",
            q(&format!("{}/escalation.sh", l.pgpool_dir)),
        ),
    ];
    // The lab's deviations (`[pgpool]`), only where the topology asks for
    // them; before the include, like every KE2 setting.
    lines.extend(t.pgpool.settings().into_iter().map(|(k, v)| {
        let v = match v {
            crate::topology::ConfValue::Str(s) => q(&s),
            n => n.to_string(),
        };
        (k, v)
    }));
    if let Some(prio) = t.pgpool.wd_priority(p.node, t.hosts.len()) {
        lines.push(("wd_priority", prio.to_string()));
    }
    lines.push(("include", q(&l.in_pgpool_dir(BACKENDS_FILE))));
    let mut s = String::new();
    for (k, v) in lines {
        let _ = writeln!(s, "{k} = {v}");
    }
    s
}

/// The backends and watchdog members, one numbered group per host in the
/// topology's order (the order fixes the node ids on every host).
pub fn backends(p: &PgParams) -> String {
    let t = p.topology;
    let mut s =
        String::from("# Rendered by ke2lab from the topology's host list; node id = position.\n");
    for (i, h) in t.hosts.iter().enumerate() {
        let n = conf_quote(&h.name);
        let _ = writeln!(s, "backend_hostname{i} = {n}");
        let _ = writeln!(s, "backend_port{i} = {}", t.ports.postgres);
        let _ = writeln!(s, "backend_weight{i} = 1");
        let _ = writeln!(
            s,
            "backend_data_directory{i} = {}",
            conf_quote(p.layout.pgdata)
        );
        let _ = writeln!(s, "backend_flag{i} = 'ALLOW_TO_FAILOVER'");
        let _ = writeln!(s, "backend_application_name{i} = {n}");
        let _ = writeln!(s, "hostname{i} = {n}");
        let _ = writeln!(s, "wd_port{i} = {}", t.ports.watchdog);
        let _ = writeln!(s, "pgpool_port{i} = {}", t.ports.pgpool);
        let _ = writeln!(s, "heartbeat_hostname{i} = {n}");
        let _ = writeln!(s, "heartbeat_port{i} = {}", t.ports.heartbeat);
        let _ = writeln!(s, "heartbeat_device{i} = ''");
    }
    s
}

/// The `pcp.conf` line: user and the MD5 of the password, as `pg_md5` prints it.
pub fn pcp_line(creds: &Credentials) -> String {
    format!("pgpool:{:x}", md5::compute(creds.pgpool.expose()))
}

/// `~postgres/.pgpass`: replication and postgres entries for every host.
pub fn pgpass(t: &Topology, creds: &Credentials) -> String {
    let mut s = String::new();
    for h in &t.hosts {
        let _ = writeln!(
            s,
            "{}:{}:replication:repl:{}",
            h.name,
            t.ports.postgres,
            creds.repl.expose()
        );
        let _ = writeln!(
            s,
            "{}:{}:postgres:postgres:{}",
            h.name,
            t.ports.postgres,
            creds.postgres.expose()
        );
    }
    s
}

/// `~postgres/.pcppass`: PCP on this host and through the VIP.
pub fn pcppass(t: &Topology, creds: &Credentials) -> String {
    format!(
        "localhost:{port}:pgpool:{pw}\n{vip}:{port}:pgpool:{pw}\n",
        port = t.ports.pcp,
        vip = t.network.vip,
        pw = creds.pgpool.expose()
    )
}

/// The sudoers entry that lets postgres (the watchdog) move the VIP.
pub fn sudoers(l: &Layout) -> String {
    format!(
        "# Rendered by ke2lab: the Pgpool-II watchdog brings the VIP up and down.\n\
         Defaults:postgres !requiretty\n\
         postgres ALL=(root) NOPASSWD: {}, {}\n",
        l.ip_cmd, l.arping_cmd
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Platform, Topology};
    use proptest::prelude::*;

    fn topo(platform: Platform) -> Topology {
        let mut t = Topology::fixture("three-node").unwrap().topology;
        for h in &mut t.hosts {
            h.platform = platform;
        }
        t
    }

    fn render_all(platform: Platform) -> String {
        let t = topo(platform);
        let p = PgParams {
            topology: &t,
            layout: Layout::of(platform),
            interface: "eth0",
            prefix: 24,
            node: 0,
        };
        let creds = Credentials::document_defaults();
        format!(
            "## postgresql.conf block\n{}\n## pg_hba.conf block\n{}\n## pgpool.conf block\n{}\n## {BACKENDS_FILE}\n{}\n## pcp.conf\n{}\n\n## pool_hba.conf block\n{}\n## .pgpass\n{}\n## .pcppass\n{}\n## sudoers\n{}",
            postgresql_conf(&p),
            pg_hba(&p),
            pgpool_conf(&p),
            backends(&p),
            pcp_line(&creds),
            pool_hba(&p),
            pgpass(&t, &creds),
            pcppass(&t, &creds),
            sudoers(p.layout)
        )
    }

    /// Ranked, each host's block names its own priority, the first host
    /// highest; unranked (a real server's topology), none does.
    #[test]
    fn wd_priority_is_per_host_only_when_ranked() {
        let mut t = topo(Platform::Debian);
        assert!(t.pgpool.ranked_priority, "the lab topology ranks");
        let conf = |t: &Topology, node: usize| {
            pgpool_conf(&PgParams {
                topology: t,
                layout: Layout::of(Platform::Debian),
                interface: "eth0",
                prefix: 24,
                node,
            })
        };
        let prio = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("wd_priority"))
                .map(str::to_string)
                .collect()
        };
        for (node, want) in [(0, "3"), (1, "2"), (2, "1")] {
            assert_eq!(prio(&conf(&t, node)), vec![format!("wd_priority = {want}")]);
        }
        t.pgpool.ranked_priority = false;
        for node in 0..3 {
            assert_eq!(prio(&conf(&t, node)), Vec::<String>::new());
        }
    }

    #[test]
    fn debian_files() {
        insta::assert_snapshot!(render_all(Platform::Debian));
    }

    #[test]
    fn rhel9_files() {
        insta::assert_snapshot!(render_all(Platform::Rhel9));
    }

    #[test]
    fn pcp_md5_matches_pg_md5() {
        // `pg_md5 pgpool` prints ba777e4c2f15c11ea8ac3be7e0440aa0.
        assert_eq!(
            pcp_line(&Credentials::document_defaults()),
            "pgpool:ba777e4c2f15c11ea8ac3be7e0440aa0"
        );
    }

    #[test]
    fn synchronous_names_every_host() {
        assert_eq!(
            synchronous_standby_names(&topo(Platform::Debian)),
            "ANY 1 (\"ke2-server1\",\"ke2-server2\",\"ke2-server3\")"
        );
    }

    proptest! {
        // For any host list, the backends file has one complete numbered
        // group per host, in order, and nothing else numbered.
        #[test]
        fn backends_follow_the_host_list(names in proptest::collection::btree_set("[a-z][a-z0-9-]{0,10}", 3..8)) {
            let mut t = topo(Platform::Debian);
            let template = t.hosts[0].clone();
            t.hosts = names.iter().enumerate().map(|(i, n)| {
                let mut h = template.clone();
                h.name = n.clone();
                h.address = std::net::Ipv4Addr::new(10, 20, 0, i as u8 + 1);
                h
            }).collect();
            let p = PgParams { topology: &t, layout: Layout::of(Platform::Debian), interface: "eth0", prefix: 24, node: 0 };
            let text = backends(&p);
            for (i, n) in names.iter().enumerate() {
                let host_line = format!("backend_hostname{i} = '{n}'\n");
                let hb_line = format!("heartbeat_hostname{i} = '{n}'\n");
                prop_assert!(text.contains(&host_line));
                prop_assert!(text.contains(&hb_line));
            }
            let groups = text.lines().filter(|l| l.starts_with("backend_hostname")).count();
            prop_assert_eq!(groups, names.len());
            prop_assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 12 * names.len());
        }
    }
}
