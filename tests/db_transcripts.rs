//! Transcripts of steps 5-7 (PostgreSQL, postgres SSH trust, Pgpool-II, its
//! start and online recovery) on `RecordingHost` for `debian` and `rhel9`,
//! as snapshots; the scripted hosts change state as the commands act on
//! them, so the second run must change nothing. No password may appear.

use ke2lab::host::{Output, Recorder, Rule};
use ke2lab::install::{InstallReport, install_database};
use ke2lab::layout::Layout;
use ke2lab::steps::Cx;
use ke2lab::steps::postgres::scram_verifier;
use ke2lab::topology::{Credentials, Platform, Topology};

fn topology(platform: Platform) -> Topology {
    let mut t = Topology::fixture("three-node").unwrap().topology;
    for h in &mut t.hosts {
        h.platform = platform;
    }
    t
}

/// Generated-looking passwords, so the leak check is meaningful.
fn creds() -> Credentials {
    let mut c = Credentials::document_defaults();
    c.postgres = "Pg-postgres-7Yq2".into();
    c.repl = "Pg-repl-8Kw3".into();
    c.pgpool = "Pg-pgpool-9Lm4".into();
    c.kompira = "Pg-kompira-1Zx5".into();
    c.pgpool_key = "Pg-key-2Vb6".into();
    c
}

fn links(addr: &str, extra: &str) -> Output {
    Output::ok(format!(
        r#"[{{"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"addr_info":[{{"family":"inet","local":"127.0.0.1","prefixlen":8}}]}},{{"ifname":"eth0","flags":["BROADCAST","UP","LOWER_UP"],"operstate":"UP","addr_info":[{{"family":"inet","local":"{addr}","prefixlen":24,"label":"eth0"}}{extra}]}}]"#
    ))
}

fn node_info(host: &str, status: &str, role: &str, repl: &str) -> Output {
    Output::ok(format!(
        "Hostname               : {host}\nPort                   : 5432\nStatus                 : 2\nStatus Name            : {status}\nRole                   : {role}\nReplication State      : {repl}\n"
    ))
}

/// `pcp_node_info -v` of every node: the primary up, the standbys down
/// until their recovery, then streaming.
fn all_nodes(t: &Topology, rebuilt: bool) -> Output {
    let mut text = String::new();
    for (id, h) in t.hosts.iter().enumerate() {
        let (status, role, repl) = match (id, rebuilt) {
            (0, _) => ("up", "primary", ""),
            (_, false) => ("down", "standby", ""),
            (_, true) => ("up", "standby", "streaming"),
        };
        text.push_str(&String::from_utf8_lossy(
            &node_info(&h.name, status, role, repl).stdout,
        ));
    }
    Output::ok(text)
}

/// `pg_stat_replication` on the primary as the view's JSON row.
fn replicas(t: &Topology, rebuilt: bool) -> Output {
    if !rebuilt {
        return Output::ok("[]\n");
    }
    let rows: Vec<String> = t.hosts[1..]
        .iter()
        .map(|h| {
            format!(
                r#"{{"application_name":"{}","state":"streaming","sync_state":"async"}}"#,
                h.name
            )
        })
        .collect();
    Output::ok(format!("[{}]\n", rows.join(",")))
}

fn catalog(c: &Credentials, full: bool) -> Output {
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
        r#"{{"in_recovery": false, "roles": {{{}, {}, {}, {}}}, "monitor": true, "databases": ["postgres","kompira","template1","template0"]}}"#,
        role("postgres", c.postgres.expose(), true, true),
        role("pgpool", c.pgpool.expose(), false, false),
        role("repl", c.repl.expose(), true, false),
        role("kompira", c.kompira.expose(), false, true),
    ))
}

/// Hosts as a fresh install finds them, changing as commands act on them.
fn scripted(t: &Topology, platform: Platform) -> Recorder {
    let rec = Recorder::new();
    let l = Layout::of(platform);
    let c = creds();
    let pcp = "(as postgres) env PCPPASSFILE=";
    let vip = t.network.vip.to_string();
    for (i, h) in t.hosts.iter().enumerate() {
        let n = h.name.as_str();
        let addr = h.address.to_string();
        rec.rule(Rule::on(
            n,
            "hostname -s",
            vec![Output::ok(format!("{n}\n"))],
        ));
        if platform == Platform::Rhel9 {
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
                    vec![Output::ok("5432/tcp 9999/tcp 9898/tcp 9000/tcp 9694/udp\n")],
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
            "{} -q -U postgres -h {}",
            l.pg_tool("pg_isready"),
            l.socket_dir
        );
        let in_recovery = "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5432 -d postgres -c 'SELECT pg_is_in_recovery()'";
        rec.rule(Rule::on(n, &isready, vec![Output::fail(2, "")]));
        rec.rule(Rule::on(n, in_recovery, vec![Output::fail(2, "no server")]));
        // A rebuilt standby runs in recovery.
        rec.rule(Rule::on(n, in_recovery, vec![Output::ok("t\n")]).when("standby"));
        if i == 0 {
            let repl = format!(
                "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h {} -p {} -d postgres -c 'SELECT coalesce(json_agg(",
                l.socket_dir, t.ports.postgres
            );
            rec.rule(Rule::on(n, &repl, vec![replicas(t, false)]));
            let count = format!(
                "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h {} -p {} -d postgres -c 'SELECT count(*) FROM pg_stat_replication",
                l.socket_dir, t.ports.postgres
            );
            rec.rule(Rule::on(n, &count, vec![Output::ok("0\n")]));
            rec.rule(Rule::on(n, &count, vec![Output::ok("2\n")]).when("all rebuilt"));
            rec.rule(Rule::on(n, &repl, vec![replicas(t, true)]).when("all rebuilt"));
            rec.rule(Rule::on(n, &isready, vec![Output::ok("")]).when("pg"));
            rec.rule(Rule::on(n, in_recovery, vec![Output::ok("f\n")]).when("pg"));
            rec.rule(Rule::on(n, format!("{}", l.pg_start()), vec![Output::ok("")]).sets("pg"));
            let state = "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5432 -d postgres -c 'SELECT json_build_object(";
            rec.rule(Rule::on(n, state, vec![catalog(&c, false)]));
            rec.rule(Rule::on(n, state, vec![catalog(&c, true)]).when("catalog"));
            rec.rule(Rule::on(n, "(as postgres) psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5432 -d postgres -f -", vec![Output::ok("")]).sets("catalog"));
            let ext = "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5432 -d template1 -c 'SELECT count(*)";
            rec.rule(Rule::on(n, ext, vec![Output::ok("0\n")]));
            rec.rule(Rule::on(n, ext, vec![Output::ok("1\n")]).when("ext"));
            rec.rule(Rule::on(n, "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5432 -d template1 -c 'CREATE EXTENSION", vec![Output::ok("")]).sets("ext"));
        }
        // ssh-keygen leaves the public key behind.
        rec.rule(
            Rule::on(n, "(as postgres) ssh-keygen", vec![Output::ok("")]).writes(
                format!("{}.pub", l.ssh_key()),
                format!("ssh-rsa AAAAkey{i} ke2lab:{n}\n"),
            ),
        );
        // Interfaces; the watchdog leader (host 1) gets the VIP.
        rec.rule(Rule::on(n, "ip -j addr show", vec![links(&addr, "")]));
        if i == 0 {
            let extra =
                format!(r#",{{"family":"inet","local":"{vip}","prefixlen":24,"label":"eth0:0"}}"#);
            rec.rule(Rule::on(n, "ip -j addr show", vec![links(&addr, &extra)]).when("pgpool"));
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
            pcp.to_string(),
            vec![node_info("ke2-server1", "up", "primary", "none")],
        ));
        for id in 1..3 {
            let info = format!(
                "{pcp}{} pcp_node_info -w -h localhost -U pgpool -v -p 9898 -n {id}",
                l.in_home(".pcppass")
            );
            let rebuilt = format!("rebuilt {id}");
            let host = &t.hosts[id].name;
            rec.rule(Rule::on(
                n,
                &info,
                vec![node_info(host, "down", "standby", "")],
            ));
            rec.rule(
                Rule::on(
                    n,
                    &info,
                    vec![node_info(host, "up", "standby", "streaming")],
                )
                .when(&rebuilt),
            );
            let mut recovered = Rule::on(
                n,
                format!(
                    "{pcp}{} pcp_recovery_node -w -h localhost -U pgpool -p 9898 -n {id}",
                    l.in_home(".pcppass")
                ),
                vec![Output::ok("")],
            )
            .sets(&rebuilt)
            .sets_on(host, "standby");
            // The last standby rebuilt: every member's view and the
            // primary's replication show both streaming.
            if id == t.hosts.len() - 1 {
                for other in &t.hosts {
                    recovered = recovered.sets_on(&other.name, "all rebuilt");
                }
            }
            rec.rule(recovered);
        }
        let all = format!(
            "{pcp}{} pcp_node_info -w -h localhost -U pgpool -p 9898 -v",
            l.in_home(".pcppass")
        );
        rec.rule(Rule::on(n, &all, vec![all_nodes(t, false)]));
        rec.rule(Rule::on(n, &all, vec![all_nodes(t, true)]).when("all rebuilt"));
        rec.rule(Rule::on(
            n,
            format!("{pcp}{} pcp_watchdog_info", l.in_home(".pcppass")),
            vec![Output::ok(include_str!(
                "fixtures/pgpool/watchdog_info_v.txt"
            ))],
        ));
    }
    rec
}

async fn transcripts(platform: Platform) -> (String, String) {
    let t = topology(platform);
    let rec = scripted(&t, platform);
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let c = creds();
    let cx = Cx::new(&t, &hosts).with_credentials(&c);
    let mut first = InstallReport::default();
    install_database(&cx, &mut first).await.unwrap();
    assert!(first.changes() > 0);
    let one = rec.transcript();
    rec.clear_events();
    let mut second = InstallReport::default();
    install_database(&cx, &mut second).await.unwrap();
    assert_eq!(
        second.changes(),
        0,
        "a second run must change nothing:\n{second}"
    );
    let two = rec.transcript();
    for text in [&one, &two, &first.to_string()] {
        for pw in [&c.postgres, &c.repl, &c.pgpool, &c.kompira, &c.pgpool_key] {
            assert!(
                !text.contains(pw.expose()),
                "a password leaked into the transcript"
            );
        }
    }
    (one, two)
}

#[tokio::test]
async fn debian_database_transcript() {
    let (first, second) = transcripts(Platform::Debian).await;
    insta::assert_snapshot!("debian_db_first_run", first);
    insta::assert_snapshot!("debian_db_second_run", second);
}

#[tokio::test]
async fn rhel9_database_transcript() {
    let (first, second) = transcripts(Platform::Rhel9).await;
    insta::assert_snapshot!("rhel9_db_first_run", first);
    insta::assert_snapshot!("rhel9_db_second_run", second);
}

/// After a healed partition every member may name the isolated old primary
/// (no standby follows it): the steps must take the majority's primary.
#[tokio::test]
async fn a_false_primary_named_by_pgpool_is_not_taken() {
    use ke2lab::steps::postgres::current_primary;
    let t = topology(Platform::Debian);
    let l = Layout::of(Platform::Debian);
    let rec = Recorder::new();
    let pcp = format!(
        "(as postgres) env PCPPASSFILE={} pcp_node_info -w -h localhost -U pgpool -v -p 9898 -n",
        l.in_home(".pcppass")
    );
    let count = "(as postgres) psql -X -q -At -v ON_ERROR_STOP=1 -h /var/run/postgresql -p 5432 -d postgres -c 'SELECT count(*) FROM pg_stat_replication";
    let n1 = t.hosts[0].name.as_str();
    rec.rule(Rule::any(
        "pgrep -x -u postgres pgpool",
        vec![Output::ok("1\n")],
    ));
    rec.rule(Rule::any(
        format!("{pcp} 0"),
        vec![node_info(n1, "up", "standby", "")],
    ));
    rec.rule(Rule::any(
        format!("{pcp} 1"),
        vec![node_info(&t.hosts[1].name, "up", "primary", "")],
    ));
    for (i, h) in t.hosts.iter().enumerate() {
        let streaming = if i == 0 { "1\n" } else { "0\n" };
        rec.rule(Rule::on(&h.name, count, vec![Output::ok(streaming)]));
    }
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let cx = Cx::new(&t, &hosts);
    assert_eq!(current_primary(&cx).await.unwrap(), 0);
    // Pgpool-II's primary with its standbys is taken as it is.
    rec.rule(Rule::on(&t.hosts[1].name, count, vec![Output::ok("2\n")]));
    assert_eq!(current_primary(&cx).await.unwrap(), 1);
}
