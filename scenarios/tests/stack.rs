//! Cluster tier: Kompira Enterprise started on the installed cluster (step
//! 8) from the pinned ke2-docker checkout (`fixtures/ke2-docker`), with the
//! stand-in images (`fixtures/standin-image`, `standin/`): every service at
//! its desired replicas; each host's 443 answers HTTPS, verified against
//! the generated local CA, with the Kompira stand-in's status page and a
//! successful database round trip through Pgpool-II; port 80 redirects to
//! HTTPS; the Kompira stand-ins log into the shared log directory; the
//! RabbitMQ nodes form one cluster; the IPVS (and open-file limit)
//! adaptation where the hosts need it; a re-run changes nothing; `docker
//! stack rm` leaves no service or container. Prints the time from infra
//! ready to converged + HTTPS 200 on every host.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ke2lab::steps::checkout::{DEFAULT_DEST, Tree};
use ke2lab::steps::deploy::STACK_NAME;
use ke2lab::wait::{Poll, wait_for_every};
use ke2lab_harness::Lab;
use ke2lab_harness::argv_watch::ArgvWatch;
use ke2lab_harness::lab::{StackImages, home};
use serde::Deserialize;

const SERVICES: [&str; 6] = [
    "jobmngrd", "kengine", "kompira", "nginx", "rabbitmq", "redis",
];

fn checkout() -> Result<Tree> {
    Ok(Tree::read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ke2-docker"),
    )?)
}

/// The parts of the Kompira stand-in's status page that are asserted.
#[derive(Debug, Deserialize)]
struct StatusPage {
    service: String,
    role: String,
    hostname: String,
    database: Check,
    amqp: Check,
    cache: Check,
}

#[derive(Debug, Deserialize)]
struct Check {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    in_recovery: Option<bool>,
    #[serde(default)]
    server_addr: Option<String>,
}

/// Every host answers HTTPS 200 with a status page whose database check
/// succeeded; returns the pages by host.
async fn https_ok(lab: &Lab, timeout: Duration) -> Result<BTreeMap<String, StatusPage>> {
    let what = "HTTPS 200 with a successful database round trip from every host's 443";
    let cluster = lab.cluster();
    let ca = &cluster.stack_ca().await?;
    let pages = wait_for_every(what, timeout, Duration::from_secs(1), || async {
        let answers = cluster.https_each(ca, "/", Duration::from_secs(10)).await;
        let mut pages = BTreeMap::new();
        let mut seen = Vec::new();
        for (host, r) in answers {
            match r {
                Ok(resp) if resp.status == 200 => {
                    match resp.json::<StatusPage>("the status page") {
                        Ok(p) if p.database.ok => {
                            pages.insert(host, p);
                        }
                        Ok(p) => seen.push(format!("{host}: database {:?}", p.database.error)),
                        Err(e) => seen.push(format!("{host}: {e}")),
                    }
                }
                Ok(resp) => seen.push(format!("{host}: HTTP {}", resp.status)),
                Err(e) => seen.push(format!("{host}: {e}")),
            }
        }
        if seen.is_empty() {
            Poll::Ready(pages)
        } else {
            Poll::NotYet(seen.join("; "))
        }
    })
    .await?;
    Ok(pages)
}

async fn stack(lab: &mut Lab) -> Result<()> {
    // No secret in any argument vector of the whole install and step 8:
    // every host's /proc/*/cmdline and the engine's exec records sampled
    // throughout (the credentials are generated, so a hit is a leak).
    let secrets = ke2lab_harness::artifacts::secrets(lab);
    ensure!(
        secrets.len() == 5,
        "generated credentials expected: {}",
        secrets.len()
    );
    // A canary proves the watch can see a secret: a short command with a
    // secret-like argument, run while it watches, must be reported.
    let canary = format!("ke2lab-canary-{:016x}", rand_u64());
    let mut watched_for = secrets.clone();
    watched_for.push(canary.clone());
    let watch = ArgvWatch::start(lab, watched_for, Duration::from_millis(100));
    let h1 = lab.host(&lab.topology.hosts[0].name)?;
    // `sh -c 'sleep 0.5' CANARY`: the canary is `$0`, in the argv of the
    // shell for half a second.
    ke2lab::host::Cmd::sh("sleep 0.5")
        .arg(&canary)
        .check(h1.as_ref())
        .await?;
    let watched = stack_steps(lab).await;
    let mut found = watch.stop().await?;
    watched?;
    let canaries = found.violations.len();
    found
        .violations
        .retain(|v| !v.contains("***") || !v.contains("sleep 0.5"));
    let canaries = canaries - found.violations.len();
    println!(
        "argv watch: {} samples, {} distinct command lines, canary seen {canaries} time(s), {} with a secret",
        found.samples,
        found.distinct,
        found.violations.len()
    );
    ensure!(canaries > 0, "the argv watch missed its canary: {found:?}");
    ensure!(
        found.distinct > 100,
        "the argv watch saw too little: {found:?}"
    );
    ensure!(
        found.violations.is_empty(),
        "secrets in argument vectors: {:#?}",
        found.violations
    );
    Ok(())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

async fn stack_steps(lab: &mut Lab) -> Result<()> {
    lab.install().await?;

    // The stand-in images are built once per machine (cached by content);
    // building them is not part of the timed start.
    let bin = ke2lab_harness::standin::kompira_binary().await?;
    let built = ke2lab_harness::standin::ensure(lab.docker(), &home().join("build"), &bin).await?;
    for (kind, size) in &built.sizes {
        println!("stand-in image {kind:?}: {} MB", size / 1_000_000);
    }
    println!(
        "stand-in archive {} MB ({} in {:.1}s)",
        built.archive_bytes / 1_000_000,
        built.base.tag,
        built.elapsed.as_secs_f64()
    );

    // Infra is ready: time step 8 up to HTTPS 200 on every host.
    let t0 = Instant::now();
    let first = lab
        .install_stack(checkout()?, StackImages::Standins)
        .await?;
    println!("stack, first run:\n{first}");
    ensure!(first.changes() > 0, "a fresh lab needs changes");
    for s in &first.steps {
        for w in &s.warnings {
            println!("adaptation/warning: {w}");
        }
    }
    let services = lab.await_stack(Duration::from_secs(300)).await?;
    let converged = t0.elapsed();
    let pages = https_ok(lab, Duration::from_secs(180)).await?;
    let ready = t0.elapsed();
    println!(
        "infra ready -> all services converged {:.1}s, -> HTTPS 200 on every host {:.1}s",
        converged.as_secs_f64(),
        ready.as_secs_f64()
    );
    let mut names: Vec<String> = services.iter().map(|x| x.name.clone()).collect();
    names.sort();
    let want: Vec<String> = SERVICES
        .iter()
        .map(|n| format!("{STACK_NAME}_{n}"))
        .collect();
    ensure!(names == want, "services {names:?}, want {want:?}");
    for s in &services {
        let (running, desired) = s.counts().context("replicas")?;
        let expect = if s.name.ends_with("_redis") { 1 } else { 3 };
        ensure!(
            running == desired && desired == expect,
            "`{}` at {}/{}, want {expect}",
            s.name,
            running,
            desired
        );
    }

    // The status pages: the stand-in uwsgi behind each nginx, its database
    // round trip answered by the primary through Pgpool-II.
    let t = lab.topology.clone();
    ensure!(pages.len() == t.hosts.len(), "pages {:?}", pages.keys());
    let mut behind = BTreeSet::new();
    for (host, p) in &pages {
        ensure!(
            p.service == "kompira-standin" && p.role == "uwsgi",
            "{host}: {p:?}"
        );
        ensure!(
            p.database.in_recovery == Some(false),
            "{host}: the database round trip did not reach the primary: {:?}",
            p.database
        );
        ensure!(p.database.server_addr.is_some(), "{host}: {:?}", p.database);
        behind.insert(p.hostname.clone());
        println!(
            "{host}: HTTPS 200 from `{}`, database {:?} answered by {:?} (primary), amqp ok {}, cache ok {}",
            p.hostname, p.database.url, p.database.server_addr, p.amqp.ok, p.cache.ok
        );
    }

    // Port 80 redirects to HTTPS on the same host and path.
    for (host, r) in lab
        .cluster()
        .http_each("/some/path", Duration::from_secs(10))
        .await
    {
        let r = r.with_context(|| format!("{host}: HTTP on port 80"))?;
        ensure!(r.status == 301, "{host}: HTTP {} on port 80", r.status);
        ensure!(
            r.header("location") == Some(&format!("https://{host}/some/path")),
            "{host}: redirect to {:?}",
            r.header("location")
        );
    }

    // The adaptation, read back from the swarm: without IPVS every service
    // on DNS round robin and published ports on the nodes; with IPVS as
    // the file says.
    let manager = lab.host(&t.hosts[0].name)?;
    let cluster = lab.cluster();
    let mut ipvs = true;
    for h in &t.hosts {
        ipvs &= cluster.has_ipvs_on(&h.name).await?;
    }
    for name in &want {
        let spec = cluster.endpoint_spec_from(&t.hosts[0].name, name).await?;
        ensure!(
            (spec.mode() == "dnsrr") != ipvs,
            "`{name}`: endpoint mode `{}` with IPVS {ipvs}",
            spec.mode()
        );
        for p in spec.ports() {
            ensure!(
                (p.publish_mode() == "host") != ipvs,
                "`{name}`: port {} published in `{}` mode with IPVS {ipvs}",
                p.target,
                p.publish_mode()
            );
        }
    }
    println!("IPVS on every host: {ipvs}; endpoint modes and published ports as expected");

    // The RabbitMQ nodes form one cluster, named as rabbitmq-cluster.conf
    // lists them (`rabbit@mq-<node>`).
    let want_nodes: BTreeSet<String> = t
        .hosts
        .iter()
        .map(|h| format!("rabbit@mq-{}", h.name))
        .collect();
    let what = "every RabbitMQ node running in one cluster";
    let h1 = &t.hosts[1].name;
    let want_nodes = &want_nodes;
    let nodes = wait_for_every(
        what,
        Duration::from_secs(120),
        Duration::from_secs(2),
        || async move {
            match cluster.rabbitmq_cluster_from(h1).await {
                Ok(c) => {
                    let got: BTreeSet<String> = c.running_nodes.into_iter().collect();
                    if got == *want_nodes {
                        Poll::Ready(got)
                    } else {
                        Poll::NotYet(format!("running nodes {got:?}"))
                    }
                }
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    println!("rabbitmq cluster: {nodes:?}");

    // The Kompira stand-ins reach RabbitMQ as `mq-<node>` (the task
    // hostname swarm's DNS resolves) and Redis: their watchers retry with
    // backoff (up to 30 s apart) after RabbitMQ's restarts at start-up.
    let what = "the status pages reporting AMQP and cache checks ok";
    wait_for_every(
        what,
        Duration::from_secs(150),
        Duration::from_secs(2),
        || async {
            match https_ok(lab, Duration::from_secs(30)).await {
                Ok(p) if p.values().all(|p| p.amqp.ok && p.cache.ok) => Poll::Ready(()),
                Ok(p) => Poll::NotYet(
                    p.iter()
                        .map(|(h, p)| {
                            format!("{h}: amqp {:?} cache {:?}", p.amqp.error, p.cache.error)
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Err(e) => Poll::NotYet(format!("{e:#}")),
            }
        },
    )
    .await?;
    println!("status pages: database, AMQP and cache ok");

    // The Kompira stand-ins log into the shared log directory: one file
    // per service (LOGGING_NAME), written by the task on every host, seen
    // from any host through GlusterFS.
    let log_dir = format!("{}/log", t.shared_dir.path);
    let h2 = lab.host(&t.hosts[2].name)?;
    for (file, prefix) in [
        ("kompira.log", "ap-"),
        ("kengine.log", "ke-"),
        ("jobmngrd.log", "jm-"),
    ] {
        let path = format!("{log_dir}/{file}");
        let body = h2
            .read_file(&path)
            .await?
            .with_context(|| format!("no `{path}` in the shared log directory"))?;
        let text = String::from_utf8_lossy(&body);
        // `<time> <LEVEL> <task hostname> <role>[pid]: message`
        let writers: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(2))
            .filter(|h| h.starts_with(prefix))
            .collect();
        let want: BTreeSet<String> = t
            .hosts
            .iter()
            .map(|h| format!("{prefix}{}", h.name))
            .collect();
        let writers: BTreeSet<String> = writers.into_iter().map(String::from).collect();
        ensure!(
            writers == want,
            "`{path}` written by {writers:?}, want {want:?}"
        );
    }
    println!("kompira.log, kengine.log, jobmngrd.log in {log_dir}, written from every host");

    // rabbitmq-cluster.conf on the manager lists the same nodes.
    let conf = manager
        .read_file(&format!(
            "{DEFAULT_DEST}/ke2/cluster/swarm/rabbitmq-cluster.conf"
        ))
        .await?
        .context("no rabbitmq-cluster.conf")?;
    let listed: BTreeSet<String> = String::from_utf8(conf)?
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            k.trim()
                .starts_with("cluster_formation.classic_config.nodes.")
        })
        .map(|(_, v)| v.trim().to_string())
        .collect();
    ensure!(listed == nodes, "rabbitmq-cluster.conf lists {listed:?}");

    let again = lab
        .install_stack(checkout()?, StackImages::Standins)
        .await?;
    ensure!(again.changes() == 0, "a re-run changed:\n{again}");

    lab.remove_stack(Duration::from_secs(120)).await?;
    Ok(())
}

#[tokio::test]
async fn kompira_starts_on_the_cluster_with_https_end_to_end() -> Result<()> {
    let topology = ke2lab_scenarios::fault_topology()?;
    ke2lab_scenarios::with_lab(&topology, async |lab| stack(lab).await).await
}
