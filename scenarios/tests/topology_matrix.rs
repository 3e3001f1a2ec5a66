//! Cluster tier: a customer matrix. Each test boots a lab for one customer's
//! topology (`fixtures/topologies/matrix-*.toml`), installs it through the
//! same entry points as the other scenarios, and asserts the cluster
//! healthy through the typed probes only: every host an active swarm
//! manager; the topology's Gluster volume a replica of n bricks at its
//! brick path, all online, mounted at its `shared_dir.path` everywhere;
//! `show pool_nodes` through the VIP on the topology's Pgpool-II port with
//! one primary and n-1 streaming standbys; the VIP on the watchdog leader
//! alone; every Pgpool-II member agreeing with the leader. Then what the
//! case is about, a re-provision that changes nothing, and a teardown that
//! leaves nothing labelled with the run. Each prints its install time.
//!
//! No sleeps: every wait polls a condition under a deadline, so the matrix
//! costs what the installs cost (it runs in CI's `scenarios` profile).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ke2lab::cluster::DbUser;
use ke2lab::host::{Cmd, Host};
use ke2lab::probe::gluster::{GLUSTER_FSTYPE, VolumeState, VolumeType, mount_at};
use ke2lab::probe::pgpool::{PoolNode, PoolSummary};
use ke2lab::probe::swarm::SwarmSummary;
use ke2lab::topology::{CredentialSpec, Secret, Topology, VMXNET3_DATA_PATH_PORT};
use ke2lab::wait::{Poll, wait_for};
use ke2lab_harness::Lab;
use ke2lab_harness::lab;
use ke2lab_scenarios::{await_agreement, await_lifecheck, with_lab};
use serde::Deserialize;

/// Boots a lab for `topology`, runs `case` on it, finishes it (evidence on
/// failure, teardown), then asserts that nothing labelled with the run is
/// left: containers, networks and volumes, listed by label through the
/// Docker API.
async fn matrix(topology: &Topology, case: impl AsyncFnOnce(&mut Lab) -> Result<()>) -> Result<()> {
    // Explicit credentials set in memory must pass the file's validation
    // too: the matrix tests what a customer can write.
    topology
        .validate()
        .context("the matrix topology does not validate")?;
    let run = with_lab(topology, async |lab| {
        let run = lab.run.clone();
        case(lab).await?;
        Ok(run)
    })
    .await?;
    let left = lab::leftovers(&lab::connect().await?, Some(&run)).await?;
    ensure!(
        left.is_empty(),
        "labelled resources of run `{run}` left after teardown: {left:?}"
    );
    println!("run `{run}`: nothing labelled `ke2lab.run={run}` left after teardown");
    Ok(())
}

/// The whole install (steps 1-7), timed, with the lab's phase report; a
/// fresh lab must need changes.
async fn install(lab: &mut Lab, case: &str) -> Result<()> {
    let start = Instant::now();
    let report = lab.install().await?;
    let took = start.elapsed();
    ensure!(
        report.changes() > 0,
        "a fresh lab must need changes:\n{report}"
    );
    print_phases(lab, 0);
    let boot = lab
        .phases
        .iter()
        .find(|p| p.name == "boot")
        .map_or(0.0, |p| p.elapsed.as_secs_f64());
    println!(
        "matrix `{case}`: install {:.1}s ({} steps, {} changes) on {} hosts, boot {boot:.1}s",
        took.as_secs_f64(),
        report.steps.len(),
        report.changes(),
        lab.topology.hosts.len(),
    );
    Ok(())
}

/// The lab's phase report from phase `from` on, as the CLI prints it.
fn print_phases(lab: &Lab, from: usize) {
    for p in &lab.phases[from.min(lab.phases.len())..] {
        println!(
            "phase {:<14} {:>7.2}s  {}",
            p.name,
            p.elapsed.as_secs_f64(),
            p.detail
        );
    }
}

/// A re-run of the install on the healthy cluster changes nothing.
async fn reprovision_changes_nothing(lab: &mut Lab) -> Result<()> {
    let start = Instant::now();
    let again = lab.install().await?;
    ensure!(
        again.changes() == 0,
        "re-provisioning changed things:\n{again}"
    );
    println!(
        "re-provision: 0 changes in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every host an active, reachable manager of one swarm of n nodes, with
/// the topology's data-path port.
async fn swarm_healthy(lab: &Lab) -> Result<()> {
    let t = &lab.topology;
    let n = t.hosts.len();
    let cluster = lab.cluster();
    let h0 = &t.hosts[0].name;
    let nodes = wait_for(
        &format!("{n} swarm managers ready and active, one leader"),
        Duration::from_secs(60),
        || async {
            match cluster.swarm_nodes_from(h0).await {
                Ok(ns) if SwarmSummary::of(&ns).is_healthy(n) => Poll::Ready(ns),
                Ok(ns) => Poll::NotYet(SwarmSummary::of(&ns).to_string()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let names: BTreeSet<&str> = nodes.iter().map(|n| n.hostname.as_str()).collect();
    let want: BTreeSet<&str> = t.hosts.iter().map(|h| h.name.as_str()).collect();
    ensure!(
        names == want,
        "swarm nodes {names:?}, want the hosts {want:?}"
    );
    let port = t.data_path_port();
    for h in &t.hosts {
        let info = cluster.swarm_info_from(&h.name).await?;
        ensure!(
            info.is_active() && info.control_available,
            "`{}` is not an active manager: {info:?}",
            h.name
        );
        ensure!(
            info.nodes as usize == n && info.managers as usize == n,
            "`{}` counts {} nodes and {} managers, want {n}",
            h.name,
            info.nodes,
            info.managers
        );
        let have = info.cluster.as_ref().map(|c| c.data_path_port);
        ensure!(
            have == Some(port),
            "`{}`: data-path port {have:?}, want `{port}`",
            h.name
        );
    }
    println!("swarm: {n} managers, data-path port {port}");
    Ok(())
}

/// The topology's volume: started, a replica of n bricks at the brick path
/// (one per host, in order), all online, mounted at `shared_dir.path` on
/// every host.
async fn gluster_healthy(lab: &Lab) -> Result<()> {
    let t = &lab.topology;
    let spec = &t.shared_dir;
    let n = t.hosts.len();
    let cluster = lab.cluster();
    let h0 = &t.hosts[0].name;
    let v = cluster
        .volume_from(h0)
        .await?
        .with_context(|| format!("volume `{}` does not exist", spec.volume))?;
    ensure!(
        v.state == VolumeState::Started
            && v.kind == VolumeType::Replicate
            && v.replica_count as usize == n
            && v.bricks.len() == n,
        "volume `{}` is {:?} {:?}, replica {} with {} bricks; want a started replica {n}",
        v.name,
        v.state,
        v.kind,
        v.replica_count,
        v.bricks.len()
    );
    for (b, h) in v.bricks.iter().zip(&t.hosts) {
        ensure!(
            b.host == h.name && b.path == spec.brick,
            "brick `{}` is not `{}:{}`",
            b.spec(),
            h.name,
            spec.brick
        );
    }
    let status = wait_for(
        &format!("every brick of `{}` online", spec.volume),
        Duration::from_secs(60),
        || async {
            match cluster.volume_status_from(h0).await {
                Ok(s) if s.online_bricks() == n => Poll::Ready(s),
                Ok(s) => Poll::NotYet(s.to_string()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    ensure!(
        status.bricks.iter().all(|b| b.path == spec.brick),
        "bricks online at other paths: {status:?}"
    );
    let source = format!("localhost:/{}", spec.volume);
    for h in &t.hosts {
        let mounts = cluster.mounts_on(&h.name).await?;
        let m = mount_at(&mounts, &spec.path)
            .with_context(|| format!("nothing mounted at `{}` on `{}`", spec.path, h.name))?;
        ensure!(
            m.fstype == GLUSTER_FSTYPE && m.source == source,
            "`{}` on `{}` is `{}` ({}), want `{source}` ({GLUSTER_FSTYPE})",
            spec.path,
            h.name,
            m.source,
            m.fstype
        );
    }
    println!(
        "gluster: `{}` replica {n} at `{}`, all online, mounted at `{}` on every host",
        spec.volume, spec.brick, spec.path
    );
    Ok(())
}

/// `show pool_nodes` through the VIP on the topology's Pgpool-II port, as
/// user `pgpool` with the run's password ([`Cluster::pool_nodes_at`]).
///
/// [`Cluster::pool_nodes_at`]: ke2lab::cluster::Cluster::pool_nodes_at
async fn pool_nodes_via_vip(lab: &Lab) -> Result<Vec<PoolNode>> {
    ke2lab_scenarios::pool_nodes(lab).await
}

/// The Pgpool-II cluster healthy: through the VIP one primary and n-1
/// streaming standbys (node ids in host order, backends on the topology's
/// PostgreSQL port); every member agrees with the watchdog leader; the VIP
/// is on the leader and on no other host. Returns (leader, primary).
async fn pgpool_healthy(lab: &Lab) -> Result<(String, String)> {
    let t = &lab.topology;
    let n = t.hosts.len();
    let vip = t.network.vip;
    let nodes = wait_for(
        &format!(
            "one primary and {} streaming standbys through `{vip}:{}`",
            n - 1,
            t.ports.pgpool
        ),
        Duration::from_secs(120),
        || async {
            match pool_nodes_via_vip(lab).await {
                Ok(ns) if PoolSummary::of(&ns).is_healthy(n) => Poll::Ready(ns),
                Ok(ns) => Poll::NotYet(PoolSummary::of(&ns).to_string()),
                Err(e) => Poll::NotYet(format!("{e:#}")),
            }
        },
    )
    .await?;
    for (node, h) in nodes.iter().zip(&t.hosts) {
        ensure!(
            node.hostname == h.name && node.port == t.ports.postgres,
            "pool node {} is `{}:{}`, want `{}:{}`",
            node.node_id,
            node.hostname,
            node.port,
            h.name,
            t.ports.postgres
        );
    }
    let (leader, primary) = await_agreement(
        lab,
        "every Pgpool-II member agreeing with the watchdog leader",
        Duration::from_secs(180),
    )
    .await?;
    let seen = nodes
        .iter()
        .find(|x| x.is_primary())
        .map(|x| x.hostname.clone());
    ensure!(
        seen.as_deref() == Some(primary.as_str()),
        "the VIP's Pgpool-II names primary {seen:?}, the agreed view `{primary}`"
    );
    // `ip -j addr` on every host: the VIP on the leader and nowhere else.
    // Polled: the leader brings the VIP up just after it wins.
    let holders = wait_for(
        &format!("the VIP `{vip}` on the watchdog leader `{leader}` alone"),
        Duration::from_secs(60),
        || async {
            match lab.cluster().vip_holders().await {
                Ok(h) if h == [leader.clone()] => Poll::Ready(h),
                Ok(h) => Poll::NotYet(format!("held by {h:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    println!(
        "pgpool: primary `{primary}`, {} streaming standbys through `{vip}:{}`; watchdog leader `{leader}` holds the VIP alone ({holders:?})",
        n - 1,
        t.ports.pgpool
    );
    Ok((leader, primary))
}

/// The cluster tier's common assertions after an install.
async fn cluster_healthy(lab: &Lab) -> Result<(String, String)> {
    swarm_healthy(lab).await?;
    gluster_healthy(lab).await?;
    pgpool_healthy(lab).await
}

// ---------------------------------------------------------------------------
// Passwords with special characters
// ---------------------------------------------------------------------------

/// Shell, URL, TOML and configuration-file metacharacters that
/// `credentials.*` accepts. Validation refuses `'`, `"`, `` ` ``, `\`,
/// `$`, `:` and whitespace (they would need escaping in `.pgpass`, SQL or
/// shell), so those are not here; `%40` is an encoded `@`, so a layer that
/// decodes twice or not at all gets a wrong password.
const SPECIALS: &[&str] = &[
    ";", "&", "@", "/", "%", "#", "?", "!", "*", "(", ")", "|", "<", ">", "~", "^", "{", "}", "[",
    "]", "=", "+", ",", ".", "-", "_", "%40", "%%",
];

/// A password made now: a letter first (not `-`, which commands would read
/// as an option), then every special in a random order, each followed by a
/// random letter or digit.
fn special_password() -> Secret {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let r = ke2lab_scenarios::random_bytes(2 * SPECIALS.len() + 2);
    let mut order: Vec<usize> = (0..SPECIALS.len()).collect();
    // Fisher-Yates with the random bytes.
    for i in (1..order.len()).rev() {
        order.swap(i, r[i] as usize % (i + 1));
    }
    let mut p = String::new();
    p.push(char::from(ALNUM[r[0] as usize % 52]));
    for (k, &i) in order.iter().enumerate() {
        p.push_str(SPECIALS[i]);
        p.push(char::from(
            ALNUM[r[SPECIALS.len() + k] as usize % ALNUM.len()],
        ));
    }
    Secret::new(p)
}

/// Every credential explicit, each a different [`special_password`].
fn special_credentials() -> CredentialSpec {
    CredentialSpec {
        use_document_defaults: false,
        postgres: Some(special_password()),
        repl: Some(special_password()),
        pgpool: Some(special_password()),
        kompira: Some(special_password()),
        pgpool_key: Some(special_password()),
    }
}

// ---------------------------------------------------------------------------
// SQL and file probes
// ---------------------------------------------------------------------------

/// One SQL value of a single-row query, as `user` (with the run's
/// password) on `addr:port`.
async fn sql_value(
    lab: &Lab,
    addr: Ipv4Addr,
    port: u16,
    user: DbUser,
    database: &str,
    sql: &str,
) -> Result<String> {
    let c = lab.cluster().sql_client(addr, port, user, database).await?;
    let user = user.name();
    let row = c
        .query_one(sql, &[])
        .await
        .with_context(|| format!("`{sql}` as `{user}` at `{addr}:{port}/{database}`"))?;
    Ok(row.get(0))
}

/// A directory's owner, mode and type, as `stat` prints them in a JSON
/// object.
#[derive(Debug, Deserialize, PartialEq, Eq)]
struct DirMeta {
    owner: String,
    group: String,
    mode: String,
    kind: String,
}

async fn dir_meta(h: &dyn Host, path: &str) -> Result<DirMeta> {
    let out = Cmd::new([
        "stat",
        "-c",
        r#"{"owner":"%U","group":"%G","mode":"%a","kind":"%F"}"#,
    ])
    .arg(path)
    .check(h)
    .await?;
    serde_json::from_str(out.stdout_lossy().trim())
        .with_context(|| format!("`stat` of `{path}` on `{}`", h.name()))
}

/// What `pg_stat_replication.sync_state` PostgreSQL reports for a standby
/// named `standby` under `synchronous_standby_names = names` (PostgreSQL's
/// grammar: `ANY k (list)` quorum, `FIRST k (list)`, `k (list)` or a bare
/// list by priority). With priority, the first `k` listed standbys that
/// stream are `sync`, the other listed ones `potential`.
fn expected_sync_state(names: &str, standby: &str, streaming: &[String]) -> &'static str {
    let names = names.trim();
    if names.is_empty() {
        return "async";
    }
    let (method, rest) = match names.split_once(char::is_whitespace) {
        Some((m, r)) if m.eq_ignore_ascii_case("ANY") || m.eq_ignore_ascii_case("FIRST") => {
            (m.to_ascii_uppercase(), r.trim())
        }
        _ => ("FIRST".to_string(), names),
    };
    let (k, list) = match rest.split_once('(') {
        Some((k, list)) => (
            k.trim().parse::<usize>().unwrap_or(1),
            list.trim_end_matches(')'),
        ),
        None => (1, rest),
    };
    let listed: Vec<String> = list
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    if !listed.iter().any(|n| n == standby || n == "*") {
        return "async";
    }
    if method == "ANY" {
        return "quorum";
    }
    let by_priority: Vec<&String> = listed
        .iter()
        .filter(|n| streaming.contains(n) || *n == "*")
        .take(k)
        .collect();
    if by_priority.iter().any(|n| *n == standby || *n == "*") {
        "sync"
    } else {
        "potential"
    }
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

/// Every port of steps 5-7 moved at once, with passwords full of shell and
/// URL metacharacters: the pool_nodes read through the VIP authenticates
/// `pgpool` (pool_hba, the AES `pool_passwd` under `pgpool_key`), the
/// agreement reads every member over PCP (`.pcppass`), the standbys stream
/// (`repl` in `.pgpass`), `kompira` commits through the VIP and `postgres`
/// logs in on every host's PostgreSQL port; the watchdog port carries the
/// members' quorum and the heartbeat port their lifecheck.
#[tokio::test]
async fn ports_all_moved_with_special_passwords() -> Result<()> {
    let mut topology = Topology::fixture("matrix-ports")?.topology;
    topology.credentials = special_credentials();
    matrix(&topology, async |lab| {
        install(lab, "ports").await?;
        cluster_healthy(lab).await?;
        let t = lab.topology.clone();
        let vip = t.network.vip;
        let db = &t.postgres.database;

        // Kompira's login through the VIP, a write committed there.
        let k = lab.cluster().sql_client(vip, t.ports.pgpool, DbUser::Kompira, db).await?;
        k.batch_execute("CREATE TABLE IF NOT EXISTS ke2lab_matrix (id serial PRIMARY KEY)")
            .await?;
        let id: i32 = k
            .query_one("INSERT INTO ke2lab_matrix DEFAULT VALUES RETURNING id", &[])
            .await?
            .get(0);
        println!("kompira through `{vip}:{}`: committed row {id}", t.ports.pgpool);

        // postgres on every host's own PostgreSQL port.
        for h in &t.hosts {
            let who = sql_value(
 lab,
                h.address,
                t.ports.postgres,
                DbUser::Postgres,
                "postgres",
                "SELECT current_user::text",
            )
            .await?;
            ensure!(who == "postgres", "`{}` logged in as `{who}`", h.name);
            let port = sql_value(
 lab,
                h.address,
                t.ports.postgres,
                DbUser::Postgres,
                "postgres",
                "SHOW port",
            )
            .await?;
            ensure!(
                port == t.ports.postgres.to_string(),
                "`{}` PostgreSQL on port {port}",
                h.name
            );
        }
        println!(
            "postgres logs in on port {} of every host with its generated password",
            t.ports.postgres
        );

        // The watchdog's members found each other on the watchdog port.
        let wd = lab
            .cluster()
            .watchdog_info()
            .await
            .context("no host answered `pcp_watchdog_info`")?;
        ensure!(
            wd.quorum && wd.total_nodes == t.hosts.len(),
            "watchdog on port {}: {wd:?}",
            t.ports.watchdog
        );

        reprovision_changes_nothing(lab).await?;

        // The heartbeat port carries the lifecheck: each member logs its
        // start once every peer's heartbeat has arrived (about 100 s after
        // Pgpool-II starts; the install and checks above take most of it).
        let start = Instant::now();
        await_lifecheck(lab, Duration::from_secs(240)).await?;
        println!(
            "watchdog lifecheck on heartbeat port {} started on every host ({:.1}s after the re-provision)",
            t.ports.heartbeat,
            start.elapsed().as_secs_f64()
        );
        Ok(())
    })
    .await
}

/// Five hosts named by FQDN, two of them on vmxnet3: the swarm's data-path
/// port is 7789 on every node.
#[tokio::test]
async fn five_fqdn_hosts_with_vmxnet3_get_data_path_port_7789() -> Result<()> {
    let topology = Topology::fixture("matrix-five-fqdn")?.topology;
    ensure!(
        topology.data_path_port() == VMXNET3_DATA_PATH_PORT,
        "the fixture must resolve `auto` to {VMXNET3_DATA_PATH_PORT}"
    );
    matrix(&topology, async |lab| {
        install(lab, "five-fqdn").await?;
        cluster_healthy(lab).await?;
        let h0 = &lab.topology.hosts[0].name;
        let info = lab.cluster().swarm_info_from(h0).await?;
        let port = info.cluster.as_ref().map(|c| c.data_path_port);
        ensure!(
            port == Some(VMXNET3_DATA_PATH_PORT),
            "the swarm's data-path port is {port:?}, want {VMXNET3_DATA_PATH_PORT}"
        );
        reprovision_changes_nothing(lab).await
    })
    .await
}

/// Four hosts with synchronous replication: the primary runs with the
/// rendered `synchronous_standby_names`, `pg_stat_replication` shows every
/// standby streaming with the sync state that value implies, and a write
/// through the VIP commits (and reaches every standby).
#[tokio::test]
async fn four_hosts_synchronous_replication() -> Result<()> {
    let topology = Topology::fixture("matrix-four-sync")?.topology;
    matrix(&topology, async |lab| {
        install(lab, "four-sync").await?;
        let (_, primary) = cluster_healthy(lab).await?;
        let t = lab.topology.clone();
        let want = ke2lab::render::pg::synchronous_standby_names(&t);
        let p = t.host(&primary).context("the primary is no host")?;
        let have = sql_value(
 lab,
            p.address,
            t.ports.postgres,
            DbUser::Postgres,
            "postgres",
            "SHOW synchronous_standby_names",
        )
        .await?;
        ensure!(
            have == want,
            "the primary `{primary}` runs with synchronous_standby_names `{have}`, rendered `{want}`"
        );
        let standbys: Vec<String> = t
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .filter(|n| *n != primary)
            .collect();
        // pg_stat_replication on the primary, read by the core's view
        // (`psql` + `parse_replicas`): typed rows.
        let want_states: Vec<(String, &str)> = standbys
            .iter()
            .map(|s| (s.clone(), expected_sync_state(&want, s, &standbys)))
            .collect();
        let replicas = wait_for(
            "every standby streaming with its synchronous state",
            Duration::from_secs(60),
            || async {
                let v = lab.cluster().pgpool_view().await;
                let mut seen: Vec<(String, String, String)> = v
                    .replicas
                    .iter()
                    .map(|r| {
                        (
                            r.application_name.clone(),
                            r.state.clone(),
                            r.sync_state.clone(),
                        )
                    })
                    .collect();
                seen.sort();
                let ok = want_states.iter().all(|(s, st)| {
                    seen.iter()
                        .any(|(a, state, sync)| a == s && state == "streaming" && sync == st)
                }) && seen.len() == standbys.len();
                if ok {
                    Poll::Ready(seen)
                } else {
                    Poll::NotYet(format!("pg_stat_replication {seen:?}, want {want_states:?}"))
                }
            },
        )
        .await?;
        println!("synchronous_standby_names `{have}`; pg_stat_replication {replicas:?}");

        // A write through the VIP commits (with synchronous_commit on, only
        // once a standby has it) and every standby replays it.
        let db = &t.postgres.database;
        let k = lab.cluster().sql_client(
            t.network.vip,
            t.ports.pgpool,
            DbUser::Kompira,
            db,
        )
        .await?;
        let commit = sql_value(
 lab,
            t.network.vip,
            t.ports.pgpool,
            DbUser::Kompira,
            db,
            "SHOW synchronous_commit",
        )
        .await?;
        ensure!(commit == "on", "synchronous_commit is `{commit}`");
        k.batch_execute("CREATE TABLE IF NOT EXISTS ke2lab_matrix (id serial PRIMARY KEY, note text)")
            .await?;
        let note = format!("sync-{}", std::process::id());
        let start = Instant::now();
        k.execute("INSERT INTO ke2lab_matrix (note) VALUES ($1)", &[&note])
            .await?;
        println!(
            "write through the VIP committed in {:.0} ms",
            start.elapsed().as_secs_f64() * 1000.0
        );
        for s in &standbys {
            let h = t.host(s).context("standby")?;
            wait_for(
                &format!("the committed row on standby `{s}`"),
                Duration::from_secs(30),
                || async {
                    let q = async {
                        let sc = lab.cluster().sql_client(
                            h.address,
                            t.ports.postgres,
                            DbUser::Kompira,
                            db,
                        )
                        .await?;
                        let n: i64 = sc
                            .query_one(
                                "SELECT count(*) FROM ke2lab_matrix WHERE note = $1",
                                &[&note],
                            )
                            .await?
                            .get(0);
                        anyhow::Ok(n)
                    };
                    match q.await {
                        Ok(1) => Poll::Ready(()),
                        Ok(n) => Poll::NotYet(format!("{n} rows")),
                        Err(e) => Poll::NotYet(format!("{e:#}")),
                    }
                },
            )
            .await?;
        }
        reprovision_changes_nothing(lab).await
    })
    .await
}

/// Custom shared directory, volume, brick, database and WAL archive: all
/// in force, and none of the document's defaults on the hosts.
#[tokio::test]
async fn custom_paths_volume_and_database() -> Result<()> {
    let topology = Topology::fixture("matrix-custom-paths")?.topology;
    let defaults = Topology::fixture("three-node")?.topology;
    matrix(&topology, async |lab| {
        install(lab, "custom-paths").await?;
        let (_, primary) = cluster_healthy(lab).await?;
        let t = lab.topology.clone();
        let db = &t.postgres.database;

        // The database exists, owned by kompira, and Kompira reaches it
        // through the VIP.
        let p = t.host(&primary).context("the primary is no host")?;
        let pc = lab
            .cluster()
            .sql_client(p.address, t.ports.postgres, DbUser::Postgres, "postgres")
            .await?;
        let rows = pc
            .query(
                "SELECT datname::text, pg_get_userbyid(datdba)::text FROM pg_database \
                 WHERE datname = $1",
                &[db],
            )
            .await?;
        let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        ensure!(
            found == [(db.clone(), "kompira".to_string())],
            "pg_database rows for `{db}`: {found:?}"
        );
        let current = sql_value(
            lab,
            t.network.vip,
            t.ports.pgpool,
            DbUser::Kompira,
            db,
            "SELECT current_database()::text",
        )
        .await?;
        ensure!(current == *db, "through the VIP: database `{current}`");

        // The WAL archive: PostgreSQL's archive_command names the custom
        // directory, and every host has it, owned by postgres, mode 0700.
        // (The document keeps `archive_mode = off`, so no WAL arrives.)
        let archive = &t.postgres.archive_dir;
        // `SHOW archive_command` says `(disabled)` while archive_mode is
        // off, so the configured value is read from the files PostgreSQL
        // applies (pg_file_settings).
        let cmd: String = pc
            .query_one(
                "SELECT setting FROM pg_file_settings WHERE name = 'archive_command' AND applied",
                &[],
            )
            .await
            .context("no applied archive_command in pg_file_settings")?
            .get(0);
        ensure!(
            cmd.contains(&format!("\"{archive}/%f\"")),
            "archive_command `{cmd}` does not copy into `{archive}`"
        );
        let mode: String = pc.query_one("SHOW archive_mode", &[]).await?.get(0);
        for h in lab.hosts() {
            let m = dir_meta(h.as_ref(), archive).await?;
            ensure!(
                m == DirMeta {
                    owner: "postgres".into(),
                    group: "postgres".into(),
                    mode: "700".into(),
                    kind: "directory".into()
                },
                "`{archive}` on `{}`: {m:?}",
                h.name()
            );
        }
        println!("archive dir `{archive}` on every host (postgres, 0700); archive_mode {mode}");

        // The SHARED_DIR layout at the custom path, and none of the
        // document's default places in use.
        for (dir, _) in ke2lab::steps::shared_dir::layout(&t) {
            ensure!(
                t.in_shared_dir(&dir),
                "`{dir}` is not under `{}`",
                t.shared_dir.path
            );
        }
        for h in lab.hosts() {
            // Every host sees the layout through its mount.
            for (dir, _) in ke2lab::steps::shared_dir::layout(&t) {
                let m = dir_meta(h.as_ref(), &dir).await?;
                ensure!(m.kind == "directory", "`{dir}` on `{}` is {m:?}", h.name());
            }
            let mounts = lab.cluster().mounts_on(h.name()).await?;
            if let Some(m) = mount_at(&mounts, &defaults.shared_dir.path) {
                bail!(
                    "the default mount point `{}` is in use on `{}`: {m:?}",
                    defaults.shared_dir.path,
                    h.name()
                );
            }
            for unused in [&defaults.shared_dir.brick, &defaults.postgres.archive_dir] {
                let out = h
                    .run(&Cmd::new(["test", "-e"]).arg(unused.as_str()))
                    .await?;
                ensure!(
                    !out.success(),
                    "the default path `{unused}` exists on `{}`",
                    h.name()
                );
            }
        }
        ensure!(
            lab.cluster()
                .volume_named_from(&t.hosts[0].name, &defaults.shared_dir.volume)
                .await?
                .is_none(),
            "the default volume `{}` exists",
            defaults.shared_dir.volume
        );
        println!(
            "no default path, mount or volume in use (`{}`, `{}`, `{}`, `{}`)",
            defaults.shared_dir.path,
            defaults.shared_dir.brick,
            defaults.shared_dir.volume,
            defaults.postgres.archive_dir
        );
        reprovision_changes_nothing(lab).await
    })
    .await
}

/// The pinned ke2-docker checkout the stack scenario uses.
fn checkout() -> Result<ke2lab::steps::checkout::Tree> {
    Ok(ke2lab::steps::checkout::Tree::read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ke2-docker"),
    )?)
}

/// The Kompira services that mount `KOMPIRA_LOG_DIR` at `/var/log/kompira`
/// (ke2-docker's `kompira.yml` and `jobmngrd.yml`).
const LOGGING_SERVICES: [&str; 3] = ["kompira", "kengine", "jobmngrd"];

/// The ke2 stack with nginx in `host` mode, fewer replicas than hosts and
/// the logs on each node's own disk: every service at its replicas; HTTPS
/// 200 on exactly the nodes whose nginx task runs (the others refuse);
/// every Kompira container's `/var/log/kompira` a bind mount of the custom
/// log directory, which the tasks write into on their nodes; step 8 and
/// the install re-run with no change. The passwords carry URL
/// metacharacters, so the stack's `DATABASE_URL` must encode them.
#[tokio::test]
async fn stack_host_mode_fewer_replicas_local_log_dir() -> Result<()> {
    use ke2lab::steps::deploy::STACK_NAME;
    use ke2lab_harness::lab::StackImages;

    let mut topology = Topology::fixture("matrix-stack")?.topology;
    topology.credentials = special_credentials();
    let defaults = Topology::fixture("three-node")?.topology;
    matrix(&topology, async |lab| {
        install(lab, "stack").await?;
        cluster_healthy(lab).await?;
        let t = lab.topology.clone();
        let replicas = t.stack.swarm_replicas as usize;
        ensure!(replicas < t.hosts.len(), "the case needs fewer replicas than hosts");

        let start = Instant::now();
        let before = lab.phases.len();
        let first = lab.install_stack(checkout()?, StackImages::Standins).await?;
        ensure!(first.changes() > 0, "a fresh stack needs changes:\n{first}");
        for w in first.steps.iter().flat_map(|s| &s.warnings) {
            println!("adaptation/warning: {w}");
        }
        let services = lab.await_stack(Duration::from_secs(300)).await?;
        let converged = start.elapsed();
        for s in &services {
            let (running, desired) = s.counts().context("replicas")?;
            let want = if s.name.ends_with("_redis") { 1 } else { replicas as u32 };
            ensure!(
                running == desired && desired == want,
                "`{}` at {running}/{desired}, want {want}",
                s.name
            );
        }

        // Where the swarm placed nginx, and that it publishes on the nodes.
        let manager = &t.hosts[0].name;
        let nginx = format!("{STACK_NAME}_nginx");
        let placed: BTreeSet<String> = lab
            .cluster()
            .service_tasks_from(manager, &nginx)
            .await?
            .into_iter()
            .filter(|x| x.is_running())
            .map(|x| x.node)
            .collect();
        ensure!(
            placed.len() == replicas,
            "`{nginx}` runs on {placed:?}, want {replicas} nodes"
        );
        let spec = lab.cluster().endpoint_spec_from(manager, &nginx).await?;
        for p in spec.ports() {
            ensure!(
                p.publish_mode() == "host",
                "`{nginx}` publishes {} in `{}` mode, want `host`",
                p.target,
                p.publish_mode()
            );
        }

        // HTTPS 200 on exactly those nodes (the uwsgi stand-in answers 200
        // only after a database round trip); the others have no listener.
        let ca = &lab.cluster().stack_ca().await?;
        let placed_ref = &placed;
        let shared: &Lab = lab;
        let answered = wait_for(
            &format!("HTTPS 200 on exactly the nginx nodes {placed:?}"),
            Duration::from_secs(180),
            || {
                async move {
                    let answers = shared
                        .cluster()
                        .https_each(ca, "/", Duration::from_secs(10))
                        .await;
                    let ok: BTreeSet<String> = answers
                        .iter()
                        .filter(|(_, r)| matches!(r, Ok(resp) if resp.status == 200))
                        .map(|(h, _)| h.clone())
                        .collect();
                    if ok == *placed_ref {
                        Poll::Ready(answers)
                    } else {
                        Poll::NotYet(
                            answers
                                .iter()
                                .map(|(h, r)| match r {
                                    Ok(resp) => format!("{h}: HTTP {}", resp.status),
                                    Err(e) => format!("{h}: {e}"),
                                })
                                .collect::<Vec<_>>()
                                .join("; "),
                        )
                    }
                }
            },
        )
        .await?;
        for (h, r) in &answered {
            match r {
                Ok(resp) => println!("{h}: HTTPS {}", resp.status),
                Err(e) => println!("{h}: no HTTPS ({e})"),
            }
        }
        print_phases(lab, before);
        println!(
            "matrix `stack`: step 8 to converged {:.1}s, to HTTPS 200 on the nginx nodes {:.1}s",
            converged.as_secs_f64(),
            start.elapsed().as_secs_f64()
        );

        // KOMPIRA_LOG_DIR: each Kompira container mounts the custom
        // directory, and writes its log there on its own node.
        let log_dir = t.kompira_log_dir();
        ensure!(!t.in_shared_dir(&log_dir), "the case wants a local log directory");
        for service in LOGGING_SERVICES {
            let full = format!("{STACK_NAME}_{service}");
            let mut seen = 0;
            for h in lab.hosts() {
                for c in lab.cluster().service_containers_on(h.name(), &full).await? {
                    let mounts = lab.cluster().container_mounts_on(h.name(), &c.id).await?;
                    let m = mounts
                        .iter()
                        .find(|m| m.destination == "/var/log/kompira")
                        .with_context(|| {
                            format!("`{}` on `{}` mounts no /var/log/kompira: {mounts:?}", c.names, h.name())
                        })?;
                    ensure!(
                        m.kind == "bind" && m.source == log_dir && m.rw,
                        "`{}` on `{}` mounts `{}` ({}, rw {}) at /var/log/kompira, want a bind of `{log_dir}`",
                        c.names,
                        h.name(),
                        m.source,
                        m.kind,
                        m.rw
                    );
                    let file = format!("{log_dir}/{service}.log");
                    wait_for(
                        &format!("`{file}` on `{}`", h.name()),
                        Duration::from_secs(60),
                        || async {
                            match h.read_file(&file).await {
                                Ok(Some(b)) if !b.is_empty() => Poll::Ready(()),
                                Ok(_) => Poll::NotYet("absent or empty".into()),
                                Err(e) => Poll::NotYet(e.to_string()),
                            }
                        },
                    )
                    .await?;
                    seen += 1;
                }
            }
            ensure!(
                seen == replicas,
                "{seen} running containers of `{full}`, want {replicas}"
            );
        }
        // Nothing went to the default, shared log directory.
        let h0 = lab.host(&t.hosts[0].name)?;
        let shared_log = format!("{}/log", defaults.shared_dir.path);
        for service in LOGGING_SERVICES {
            let file = format!("{shared_log}/{service}.log");
            ensure!(
                h0.read_file(&file).await?.is_none(),
                "`{file}` exists: logs went to the default directory"
            );
        }
        println!("Kompira containers bind `{log_dir}` at /var/log/kompira and log there on their nodes");

        let again = lab.install_stack(checkout()?, StackImages::Standins).await?;
        ensure!(again.changes() == 0, "step 8 re-run changed:\n{again}");
        reprovision_changes_nothing(lab).await
    })
    .await
}

#[test]
fn sync_states_follow_synchronous_standby_names() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let streaming = s(&["b", "c", "d"]);
    let any = "ANY 1 (\"a\",\"b\",\"c\",\"d\")";
    assert_eq!(expected_sync_state(any, "b", &streaming), "quorum");
    assert_eq!(expected_sync_state("", "b", &streaming), "async");
    assert_eq!(
        expected_sync_state("ANY 1 (a, c)", "b", &streaming),
        "async"
    );
    let first = "FIRST 1 (a, b, c, d)";
    assert_eq!(expected_sync_state(first, "b", &streaming), "sync");
    assert_eq!(expected_sync_state(first, "c", &streaming), "potential");
    assert_eq!(expected_sync_state("2 (c, b, d)", "b", &streaming), "sync");
    assert_eq!(
        expected_sync_state("2 (c, b, d)", "d", &streaming),
        "potential"
    );
    assert_eq!(expected_sync_state("d", "d", &streaming), "sync");
}

#[test]
fn special_passwords_validate_and_differ() {
    let a = special_password();
    let b = special_password();
    assert_ne!(a, b);
    for p in [&a, &b] {
        for s in SPECIALS {
            assert!(p.expose().contains(s), "`{s}` missing");
        }
    }
    let mut t = Topology::fixture("matrix-ports").unwrap().topology;
    t.credentials = special_credentials();
    t.validate().unwrap();
}
