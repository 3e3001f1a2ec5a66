//! No default leaks into a command: the whole install (steps 1-7: swarm,
//! shared directory, database; step 8's certificates and stack files) runs against `RecordingHost`s for generated
//! topologies in which every field that has a default takes another value
//! (ports, paths, volume, database, brick, WAL archive, replicas,
//! replication mode, 3 to 7 hosts with FQDN names, platform), and the
//! transcripts of the first run and of the idempotent second run must not
//! name any of the procedure's defaults. A command, file or probe that took
//! `5432` or `/mnt/gluster` from a constant instead of the topology would
//! show it here; the document's example (the snapshot tests) cannot.

use std::net::Ipv4Addr;

use ke2lab::install::{InstallReport, install_database, install_shared_dir, install_swarm};
use ke2lab::steps::stack::{Certs, SetupStack, StackOptions};
use ke2lab::steps::{self, Cx, StepError};
use ke2lab::topology::{
    ClusterSpec, CredentialSpec, DataPathPort, HostSpec, NetworkSpec, Nic, PgpoolSpec, Platform,
    Ports, PostgresSpec, SharedDirKind, SharedDirSpec, StackSpec, SwarmSpec, Topology,
};
use proptest::prelude::*;

mod support;

/// The procedure's defaults that a generated topology never takes: ports
/// as whole numbers, the rest as substrings.
const DEFAULT_PORTS: [u16; 5] = [5432, 9999, 9898, 9000, 9694];
const DEFAULT_WORDS: &[&str] = &[
    "/mnt/gluster",
    "gvol0",
    "/var/glustervol0",
    "/var/lib/pgsql/archivedir",
    "ke2-server",
    "10.20.0.",
];

/// A lowercase word that contains none of the defaults' words.
fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{2,7}".prop_filter("a word of a default", |w| {
        ![
            "kompira",
            "gluster",
            "gvol",
            "pgsql",
            "archivedir",
            "server",
            "postgres",
        ]
        .iter()
        .any(|d| w.contains(d) || d.contains(w.as_str()))
    })
}

/// A port a service may take that is none of the defaults.
fn port() -> impl Strategy<Value = u16> {
    (1024u16..=49151).prop_filter("a default or fixed port", |p| {
        !DEFAULT_PORTS.contains(p) && ![2377, 7946, 4789, 7789, 24007, 24008].contains(p)
    })
}

prop_compose! {
    fn topology()(
        n in 3usize..=7,
        domain in word(),
        stem in word(),
        net in (11u8..=250, 0u8..=255),
        platform in prop_oneof![Just(Platform::Debian), Just(Platform::Rhel9)],
        vmxnet3 in prop::collection::vec(any::<bool>(), 7),
        explicit_dpp in prop::option::of(port()),
        ports in prop::array::uniform5(port()),
        shared in word(),
        volume in word(),
        brick in word(),
        archive in word(),
        database in word(),
        synchronous in any::<bool>(),
        ping_timeout in prop::option::of(1u32..=60),
        cache_memory_mb in prop::option::of(1u32..=1024),
        wd_interval in prop::option::of(1u32..=30),
        ranked_priority in any::<bool>(),
        replicas in 1u32..=7,
        max_connections in 10u32..=500,
        stack_dirs in (prop::option::of(word()), any::<bool>(), any::<bool>()),
    ) -> Topology {
        let address = |i: u8| Ipv4Addr::new(10, net.0, net.1, i);
        let hosts = (0..n)
            .map(|i| HostSpec {
                name: format!("{stem}{}.{domain}.example", i + 1),
                address: address(i as u8 + 11),
                platform,
                nic: if vmxnet3[i] { Nic::Vmxnet3 } else { Nic::Virtio },
                interface: None,
            })
            .collect();
        Topology {
            cluster: ClusterSpec { name: stem.clone() },
            hosts,
            network: NetworkSpec {
                prefix: 24,
                vip: address(200),
                interface: None,
                cluster_hba: "samenet".into(),
                kompira_hba: "samenet".into(),
            },
            swarm: SwarmSpec {
                data_path_port: explicit_dpp.map_or(DataPathPort::Auto, DataPathPort::Port),
            },
            ports: Ports {
                postgres: ports[0],
                pgpool: ports[1],
                pcp: ports[2],
                watchdog: ports[3],
                heartbeat: ports[4],
            },
            shared_dir: SharedDirSpec {
                kind: SharedDirKind::Gluster,
                path: format!("/srv/{shared}"),
                volume,
                brick: format!("/data/{brick}-brick"),
                ping_timeout,
            },
            credentials: CredentialSpec::default(),
            postgres: PostgresSpec {
                database,
                archive_dir: format!("/data/{archive}-wal"),
                max_connections,
                synchronous,
            },
            pgpool: PgpoolSpec { cache_memory_mb, wd_interval, ranked_priority },
            stack: StackSpec {
                swarm_replicas: replicas.min(n as u32),
                // A log directory of each host's own, outside the shared
                // one; var and ssl moved within it.
                log_dir: stack_dirs.0.map(|w| format!("/data/{w}-log")),
                var_dir: stack_dirs.1.then(|| format!("/srv/{shared}/kvar")),
                ssl_dir: stack_dirs.2.then(|| format!("/srv/{shared}/kssl")),
                ..StackSpec::default()
            },
        }
    }
}

/// The whole install, twice (the second run must change nothing), with one
/// recorder per phase scripted from the topology; the transcripts of both
/// runs of every phase, in order.
async fn transcripts(t: &Topology) -> Result<String, StepError> {
    let c = support::db::creds();
    let mut all = String::new();
    let stack = ke2lab::host::Recorder::new();
    support::stack::manager(t, &stack);
    let phases: [(&str, ke2lab::host::Recorder); 4] = [
        ("swarm", support::swarm::fresh_hosts(t, true)),
        ("shared dir", support::gluster::fresh_hosts(t, true)),
        ("database", support::db::scripted(t, &c)),
        ("stack", stack),
    ];
    let opts = StackOptions::from_topology(t, support::stack::CHECKOUT);
    for (phase, rec) in phases {
        let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
        let cx = Cx::new(t, &hosts).with_credentials(&c);
        for run in ["first", "second"] {
            let mut report = InstallReport::default();
            match phase {
                "swarm" => install_swarm(&cx, &mut report).await?,
                "shared dir" => install_shared_dir(&cx, &mut report).await?,
                "database" => install_database(&cx, &mut report).await?,
                _ => {
                    // Step 8 but the checkout copy (its input is a local
                    // tree, not the topology) and the deploy.
                    report
                        .steps
                        .push(steps::run(&Certs::new(&opts), &cx).await?);
                    report
                        .steps
                        .push(steps::run(&SetupStack::new(opts.clone()), &cx).await?);
                }
            }
            if run == "second" {
                assert_eq!(
                    report.changes(),
                    0,
                    "the second {phase} run must change nothing:\n{report}"
                );
            }
            all.push_str(&format!("## {phase}, {run} run\n"));
            // Certificate bodies are random base64, which may hold any number.
            all.push_str(&support::stack::stable(&rec.transcript()));
            rec.clear_events();
        }
    }
    Ok(all)
}

/// Every line of `text` that names a default, with the default.
fn defaults_in(t: &Topology, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut ports: Vec<u16> = DEFAULT_PORTS.to_vec();
    if t.data_path_port() != 4789 {
        ports.push(4789);
    }
    for line in text.lines() {
        // Whole numbers only: `15432` or `9000000` are not `5432`/`9000`.
        for number in line.split(|c: char| !c.is_ascii_digit()) {
            if let Ok(p) = number.parse::<u16>()
                && ports.contains(&p)
                && number.len() == p.to_string().len()
            {
                found.push(format!("port `{p}` in: {line}"));
            }
        }
        for w in DEFAULT_WORDS {
            if line.contains(w) {
                found.push(format!("`{w}` in: {line}"));
            }
        }
        // `kompira` is also a role, so the database name is looked for
        // where a database is named: SQL, HBA lines, a URL's path, `-d`.
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '|')
            .filter(|w| !w.is_empty())
            .collect();
        for pair in words.windows(2) {
            let db_context = matches!(pair[0], "DATABASE" | "-d" | "local" | "host" | "hostssl");
            if db_context && pair[1].trim_matches(['"', '\'', ';']) == "kompira" {
                found.push(format!("database `kompira` in: {line}"));
            }
        }
        if line.contains("dbname=kompira") || line.contains("/kompira'") {
            found.push(format!("database `kompira` in: {line}"));
        }
        if let Some(problem) = default_by_omission(t, line) {
            found.push(format!("{problem} in: {line}"));
        }
    }
    found
}

/// A default can also leak by omission: a PostgreSQL or PCP client run
/// without `-p` connects to its built-in port (`5432`, `9898`), which no
/// transcript shows. Every such command the steps run names its port, and
/// that port is the topology's.
fn default_by_omission(t: &Topology, line: &str) -> Option<String> {
    let (_, cmd) = line.split_once("] $ ")?;
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let tool = words.iter().find_map(|w| {
        let name = w.rsplit('/').next().unwrap_or(w);
        ["psql", "pg_isready", "pg_basebackup", "pg_rewind"]
            .contains(&name)
            .then_some("postgres")
            .or_else(|| name.starts_with("pcp_").then_some("pcp"))
    })?;
    let want = if tool == "pcp" {
        vec![t.ports.pcp]
    } else {
        vec![t.ports.postgres, t.ports.pgpool]
    };
    let given = words
        .windows(2)
        .find(|w| w[0] == "-p")
        .and_then(|w| w[1].trim_matches('\'').parse::<u16>().ok());
    match given {
        Some(p) if want.contains(&p) => None,
        Some(p) => Some(format!("a {tool} client on port `{p}`")),
        None => Some(format!(
            "a {tool} client without `-p` (its built-in default port)"
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 32,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_default_reaches_a_command(t in topology()) {
        // Generated topologies are valid ones: a rejected one is a bug of
        // the generator, not a case to skip.
        let warnings = t.validate().unwrap_or_else(|e| panic!("generated topology refused: {e}"));
        let _ = warnings;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Against scripted hosts the install takes well under a second; a
        // step waiting on an answer the script never gives (a command the
        // script does not know, because it changed) ends the case here
        // instead of at the step's own minutes-long deadline.
        let text = runtime
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(20), transcripts(&t)).await
            })
            .unwrap_or_else(|_| panic!("the scripted install did not finish in 20 s"))
            .unwrap_or_else(|e| panic!("install failed: {e}"));
        let found = defaults_in(&t, &text);
        prop_assert!(found.is_empty(), "defaults in the transcript:\n{}", found.join("\n"));
    }
}

/// The check itself can fail: the document's example names every default.
#[tokio::test]
async fn the_documents_example_is_full_of_defaults() {
    let t = support::on_platform("three-node", Platform::Debian);
    let text = transcripts(&t).await.unwrap();
    let found = defaults_in(&t, &text);
    for needle in [
        "port `5432`",
        "port `9999`",
        "port `9898`",
        "port `9000`",
        "port `9694`",
        "`/mnt/gluster`",
        "`gvol0`",
        "`/var/glustervol0`",
        "database `kompira`",
    ] {
        assert!(
            found.iter().any(|f| f.starts_with(needle)),
            "the check does not see {needle}"
        );
    }
}

/// The omission check sees a client without its port, and one on a port
/// the topology did not choose.
#[test]
fn a_client_without_its_port_is_a_default() {
    let mut t = support::on_platform("three-node", Platform::Debian);
    t.ports.postgres = 6543;
    t.ports.pcp = 7898;
    let seen = |line: &str| defaults_in(&t, line);
    assert!(
        seen("[h] $ /usr/bin/pg_isready -q -U postgres -h /var/run/postgresql -p 6543").is_empty()
    );
    let missing =
        seen("[h] $ /usr/lib/postgresql/15/bin/pg_isready -q -U postgres -h /var/run/postgresql");
    assert!(
        missing[0].starts_with("a postgres client without `-p`"),
        "{missing:?}"
    );
    let other = seen(
        "[h] $ (as postgres) env PCPPASSFILE=x pcp_node_info -w -h localhost -U pgpool -p 6543 -n 1",
    );
    assert!(
        other[0].starts_with("a pcp client on port `6543`"),
        "{other:?}"
    );
    // A rendered script's body is not a command line.
    assert!(seen("[h]   | psql -h \"$host\" -p \"$port\"").is_empty());
}
