//! Steps 5-7 (PostgreSQL, postgres SSH trust, Pgpool-II, its start, online
//! recovery, synchronous replication) on hosts that finished steps 1-4:
//! only the first host's PostgreSQL runs before recovery; each standby
//! streams once its `pcp_recovery_node` ran; the first host is the
//! watchdog leader and holds the VIP once Pgpool-II started.

use ke2lab::host::{Output, Recorder, Rule};
use ke2lab::layout::Layout;
use ke2lab::steps::postgres::scram_verifier;
use ke2lab::topology::{Credentials, Platform, Topology};

/// Generated-looking passwords, so a leak check is meaningful.
pub fn creds() -> Credentials {
    let mut c = Credentials::document_defaults();
    c.postgres = "Pg-postgres-7Yq2".into();
    c.repl = "Pg-repl-8Kw3".into();
    c.pgpool = "Pg-pgpool-9Lm4".into();
    c.kompira = "Pg-kompira-1Zx5".into();
    c.pgpool_key = "Pg-key-2Vb6".into();
    c
}

pub fn links(addr: &str, prefix: u8, extra: &str) -> Output {
    Output::ok(format!(
        r#"[{{"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"addr_info":[{{"family":"inet","local":"127.0.0.1","prefixlen":8}}]}},{{"ifname":"eth0","flags":["BROADCAST","UP","LOWER_UP"],"operstate":"UP","addr_info":[{{"family":"inet","local":"{addr}","prefixlen":{prefix},"label":"eth0"}}{extra}]}}]"#
    ))
}

pub fn node_info(t: &Topology, host: &str, status: &str, role: &str, repl: &str) -> Output {
    Output::ok(format!(
        "Hostname               : {host}\nPort                   : {}\nStatus                 : 2\nStatus Name            : {status}\nRole                   : {role}\nReplication State      : {repl}\n",
        t.ports.postgres
    ))
}

/// `pcp_node_info -v` of every node: the primary up, the standbys down
/// until their recovery, then streaming.
pub fn all_nodes(t: &Topology, rebuilt: bool) -> Output {
    let mut text = String::new();
    for (id, h) in t.hosts.iter().enumerate() {
        let (status, role, repl) = match (id, rebuilt) {
            (0, _) => ("up", "primary", ""),
            (_, false) => ("down", "standby", ""),
            (_, true) => ("up", "standby", "streaming"),
        };
        text.push_str(&String::from_utf8_lossy(
            &node_info(t, &h.name, status, role, repl).stdout,
        ));
    }
    Output::ok(text)
}

/// `pg_stat_replication` on the primary as the view's JSON row.
pub fn replicas(t: &Topology, rebuilt: bool) -> Output {
    if !rebuilt {
        return Output::ok("[]\n");
    }
    let sync = if t.postgres.synchronous {
        "quorum"
    } else {
        "async"
    };
    let rows: Vec<String> = t.hosts[1..]
        .iter()
        .map(|h| {
            format!(
                r#"{{"application_name":"{}","state":"streaming","sync_state":"{sync}"}}"#,
                h.name
            )
        })
        .collect();
    Output::ok(format!("[{}]\n", rows.join(",")))
}

/// `pcp_watchdog_info -v` of a healthy watchdog led by the first host.
pub fn watchdog_info(t: &Topology) -> Output {
    let n = t.hosts.len();
    let p = &t.ports;
    let leader = &t.hosts[0].name;
    let mut text = format!(
        "Watchdog Cluster Information \nTotal Nodes              : {n}\nRemote Nodes             : {r}\nMember Remote Nodes      : {r}\nAlive Remote Nodes       : {r}\nNodes required for quorum: {q}\nQuorum state             : QUORUM EXIST\nLocal node escalation    : YES\nLeader Node Name         : {leader}:{pp} Linux {leader}\nLeader Host Name         : {leader}\n\nWatchdog Node Information \n",
        r = n - 1,
        q = n / 2 + 1,
        pp = p.pgpool,
    );
    for (i, h) in t.hosts.iter().enumerate() {
        let (status, name) = if i == 0 {
            (4, "LEADER")
        } else {
            (7, "STANDBY")
        };
        text.push_str(&format!(
            "Node Name         : {h}:{pp} Linux {h}\nHost Name         : {h}\nDelegate IP       : {vip}\nPgpool port       : {pp}\nWatchdog port     : {wp}\nNode priority     : 1\nStatus            : {status}\nStatus Name       : {name}\nMembership Status : MEMBER\n\n",
            h = h.name,
            vip = t.network.vip,
            pp = p.pgpool,
            wp = p.watchdog,
        ));
    }
    Output::ok(text)
}

pub fn catalog(t: &Topology, c: &Credentials, full: bool) -> Output {
    let salt = b"fixed-test-salt!";
    let role = |name: &str, pw: &str, repl: bool, createdb: bool| {
        format!(
            r#""{name}": {{"password": "{}", "replication": {repl}, "createdb": {createdb}}}"#,
            scram_verifier(pw, salt, 4096)
        )
    };
    if !full {
        return Output::ok(
            r#"{"in_recovery": false, "roles": {"postgres": {"password": null, "replication": true, "createdb": true}}, "monitor": false, "databases": ["postgres","template1","template0"]}"#,
        );
    }
    Output::ok(format!(
        r#"{{"in_recovery": false, "roles": {{{}, {}, {}, {}}}, "monitor": true, "databases": ["postgres","{}","template1","template0"]}}"#,
        role("postgres", c.postgres.expose(), true, true),
        role("pgpool", c.pgpool.expose(), false, false),
        role("repl", c.repl.expose(), true, false),
        role("kompira", c.kompira.expose(), false, true),
        t.postgres.database,
    ))
}

/// The firewall's ports once the database step opened them.
fn database_ports(t: &Topology) -> String {
    let p = &t.ports;
    format!(
        "{}/tcp {}/tcp {}/tcp {}/tcp {}/udp\n",
        p.postgres, p.pgpool, p.pcp, p.watchdog, p.heartbeat
    )
}

/// Hosts as a fresh install of steps 5-7 finds them, changing as commands
/// act on them.
pub fn scripted(t: &Topology, c: &Credentials) -> Recorder {
    let rec = Recorder::new();
    let vip = t.network.vip.to_string();
    let pg = t.ports.postgres;
    let pcp_port = t.ports.pcp;
    for (i, h) in t.hosts.iter().enumerate() {
        let l = Layout::of(h.platform);
        let pcp = format!("(as postgres) env PCPPASSFILE={}", l.in_home(".pcppass"));
        let n = h.name.as_str();
        let addr = h.address.to_string();
        let psql = |db: &str| {
            format!(
                "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h {} -p {pg} -d {db} -c '",
                l.socket_dir
            )
        };
        rec.rule(Rule::on(
            n,
            "hostname -s",
            vec![Output::ok(format!(
                "{}\n",
                n.split('.').next().unwrap_or(n)
            ))],
        ));
        if h.platform == Platform::Rhel9 {
            rec.rule(Rule::on(n, "sh -c 'test -x", vec![Output::fail(1, "")]));
            rec.rule(Rule::on(n, "sh -c 'test -x", vec![Output::ok("")]).when("pkgs"));
            rec.rule(
                Rule::on(n, "dnf -y install '--disablerepo", vec![Output::ok("")]).sets("pkgs"),
            );
            rec.rule(Rule::on(
                n,
                "firewall-cmd --permanent --list-ports",
                vec![Output::ok("\n")],
            ));
            rec.rule(
                Rule::on(
                    n,
                    "firewall-cmd --permanent --list-ports",
                    vec![Output::ok(database_ports(t))],
                )
                .when("fw"),
            );
            rec.rule(Rule::on(n, "firewall-cmd --reload", vec![Output::ok("")]).sets("fw"));
            rec.rule(Rule::on(
                n,
                format!("test -s {}", l.in_pgdata("PG_VERSION")),
                vec![Output::fail(1, "")],
            ));
            rec.rule(
                Rule::on(
                    n,
                    format!("test -s {}", l.in_pgdata("PG_VERSION")),
                    vec![Output::ok("")],
                )
                .when("initdb"),
            );
            rec.rule(
                Rule::on(
                    n,
                    "/usr/pgsql-16/bin/postgresql-16-setup initdb",
                    vec![Output::ok("")],
                )
                .sets("initdb"),
            );
        }
        // Directories appear when `install -d` makes them.
        for (dir, mode) in [
            (t.postgres.archive_dir.as_str(), "700"),
            (l.socket_dir, "2775"),
            (l.pgpool_log_dir, "755"),
            (&*l.in_home(".ssh"), "700"),
        ] {
            let stat = format!("stat -c '%U:%G %a %F' {dir}");
            let flag = format!("dir {dir}");
            rec.rule(Rule::on(n, &stat, vec![Output::fail(1, "No such file")]));
            rec.rule(
                Rule::on(
                    n,
                    &stat,
                    vec![Output::ok(format!("postgres:postgres {mode} directory\n"))],
                )
                .when(&flag),
            );
            rec.rule(
                Rule::on(
                    n,
                    format!("install -d -o postgres -g postgres -m {mode} {dir}"),
                    vec![Output::ok("")],
                )
                .sets(&flag),
            );
        }
        // PostgreSQL: only the primary runs before recovery.
        let isready = format!(
            "{} -q -U postgres -h {} -p {pg}",
            l.pg_tool("pg_isready"),
            l.socket_dir
        );
        let in_recovery = format!("{}SELECT pg_is_in_recovery()'", psql("postgres"));
        rec.rule(Rule::on(n, &isready, vec![Output::fail(2, "")]));
        rec.rule(Rule::on(
            n,
            &in_recovery,
            vec![Output::fail(2, "no server")],
        ));
        // A rebuilt standby runs in recovery.
        rec.rule(Rule::on(n, &in_recovery, vec![Output::ok("t\n")]).when("standby"));
        if i == 0 {
            let repl = format!("{}SELECT coalesce(json_agg(", psql("postgres"));
            rec.rule(Rule::on(n, &repl, vec![replicas(t, false)]));
            let count = format!(
                "{}SELECT count(*) FROM pg_stat_replication",
                psql("postgres")
            );
            rec.rule(Rule::on(n, &count, vec![Output::ok("0\n")]));
            rec.rule(
                Rule::on(
                    n,
                    &count,
                    vec![Output::ok(format!("{}\n", t.hosts.len() - 1))],
                )
                .when("all rebuilt"),
            );
            rec.rule(Rule::on(n, &repl, vec![replicas(t, true)]).when("all rebuilt"));
            rec.rule(Rule::on(n, &isready, vec![Output::ok("")]).when("pg"));
            rec.rule(Rule::on(n, &in_recovery, vec![Output::ok("f\n")]).when("pg"));
            rec.rule(Rule::on(n, format!("{}", l.pg_start()), vec![Output::ok("")]).sets("pg"));
            let state = format!("{}SELECT json_build_object(", psql("postgres"));
            rec.rule(Rule::on(n, &state, vec![catalog(t, c, false)]));
            rec.rule(Rule::on(n, &state, vec![catalog(t, c, true)]).when("catalog"));
            rec.rule(
                Rule::on(
                    n,
                    format!(
                        "(as postgres) psql -X -q -v ON_ERROR_STOP=1 -h {} -p {pg} -d postgres -f -",
                        l.socket_dir
                    ),
                    vec![Output::ok("")],
                )
                .sets("catalog"),
            );
            let ext = format!("{}SELECT count(*)", psql("template1"));
            rec.rule(Rule::on(n, &ext, vec![Output::ok("0\n")]));
            rec.rule(Rule::on(n, &ext, vec![Output::ok("1\n")]).when("ext"));
            rec.rule(
                Rule::on(
                    n,
                    format!("{}CREATE EXTENSION", psql("template1")),
                    vec![Output::ok("")],
                )
                .sets("ext"),
            );
            // Synchronous replication: set with ALTER SYSTEM, then shown.
            let show = format!("{}SHOW synchronous_standby_names'", psql("postgres"));
            rec.rule(Rule::on(n, &show, vec![Output::ok("\n")]));
            rec.rule(
                Rule::on(
                    n,
                    &show,
                    vec![Output::ok(format!(
                        "{}\n",
                        ke2lab::render::pg::synchronous_standby_names(t)
                    ))],
                )
                .when("sync"),
            );
            rec.rule(
                Rule::on(
                    n,
                    format!(
                        "{}ALTER SYSTEM SET synchronous_standby_names",
                        psql("postgres")
                    ),
                    vec![Output::ok("")],
                )
                .sets("sync"),
            );
        }
        // ssh-keygen leaves the public key behind.
        rec.rule(
            Rule::on(n, "(as postgres) ssh-keygen", vec![Output::ok("")]).writes(
                format!("{}.pub", l.ssh_key()),
                format!("ssh-rsa AAAAkey{i} ke2lab:{n}\n"),
            ),
        );
        // Interfaces; the watchdog leader (the first host) gets the VIP.
        let prefix = t.network.prefix;
        rec.rule(Rule::on(
            n,
            "ip -j addr show",
            vec![links(&addr, prefix, "")],
        ));
        if i == 0 {
            let extra = format!(
                r#",{{"family":"inet","local":"{vip}","prefixlen":{prefix},"label":"eth0:0"}}"#
            );
            rec.rule(
                Rule::on(n, "ip -j addr show", vec![links(&addr, prefix, &extra)]).when("pgpool"),
            );
        }
        // pg_enc leaves the three AES entries.
        rec.rule(
            Rule::on(n, "sh -c 'pg_enc -m", vec![Output::ok("")]).writes(
                l.in_pgpool_dir("pool_passwd"),
                "pgpool:AESx\npostgres:AESy\nkompira:AESz\n",
            ),
        );
        // Pgpool-II runs once started.
        rec.rule(Rule::on(
            n,
            "pgrep -x -u postgres pgpool",
            vec![Output::fail(1, "")],
        ));
        rec.rule(
            Rule::on(n, "pgrep -x -u postgres pgpool", vec![Output::ok("123\n")]).when("pgpool"),
        );
        rec.rule(Rule::on(n, format!("{}", l.pgpool_start()), vec![Output::ok("")]).sets("pgpool"));
        rec.rule(Rule::on(
            n,
            pcp.clone(),
            vec![node_info(t, &t.hosts[0].name, "up", "primary", "none")],
        ));
        for id in 1..t.hosts.len() {
            let info =
                format!("{pcp} pcp_node_info -w -h localhost -U pgpool -v -p {pcp_port} -n {id}");
            let rebuilt = format!("rebuilt {id}");
            let host = &t.hosts[id].name;
            rec.rule(Rule::on(
                n,
                &info,
                vec![node_info(t, host, "down", "standby", "")],
            ));
            rec.rule(
                Rule::on(
                    n,
                    &info,
                    vec![node_info(t, host, "up", "standby", "streaming")],
                )
                .when(&rebuilt),
            );
            let mut recovered = Rule::on(
                n,
                format!("{pcp} pcp_recovery_node -w -h localhost -U pgpool -p {pcp_port} -n {id}"),
                vec![Output::ok("")],
            )
            .sets(&rebuilt)
            .sets_on(host, "standby");
            // The last standby rebuilt: every member's view and the
            // primary's replication show all of them streaming.
            if id == t.hosts.len() - 1 {
                for other in &t.hosts {
                    recovered = recovered.sets_on(&other.name, "all rebuilt");
                }
            }
            rec.rule(recovered);
        }
        let all = format!("{pcp} pcp_node_info -w -h localhost -U pgpool -p {pcp_port} -v");
        rec.rule(Rule::on(n, &all, vec![all_nodes(t, false)]));
        rec.rule(Rule::on(n, &all, vec![all_nodes(t, true)]).when("all rebuilt"));
        rec.rule(Rule::on(
            n,
            format!("{pcp} pcp_watchdog_info"),
            vec![watchdog_info(t)],
        ));
    }
    rec
}
