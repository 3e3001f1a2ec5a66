//! Cluster tier: step 8 up to and including `docker stack deploy`, on real
//! hosts with the real compose tool, from the pinned ke2-docker checkout
//! (`fixtures/ke2-docker`). Checks the certificates in the shared `ssl/`
//! on every host, `rabbitmq-cluster.conf` naming every swarm node, the
//! stack's services as the swarm reports them, the IPVS adaptation where
//! the kernel lacks IPVS (unmodified services where it has it), and that a
//! re-run changes nothing. The services' images are not available here
//! (no registry, no stand-in images yet), so their tasks are not expected
//! to run: convergence and HTTPS are not asserted by this scenario.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use ke2lab::host::Cmd;
use ke2lab::probe::stack::{has_ipvs, services};
use ke2lab::steps::checkout::{DEFAULT_DEST, Tree};
use ke2lab::steps::deploy::STACK_NAME;
use ke2lab::topology::Topology;
use ke2lab_harness::Lab;
use ke2lab_harness::lab::keep_on_failure;
use serde_json::Value;

const SERVICES: [&str; 6] = [
    "jobmngrd", "kengine", "kompira", "nginx", "rabbitmq", "redis",
];

fn checkout() -> Result<Tree> {
    Ok(Tree::read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ke2-docker"),
    )?)
}

async fn stack(lab: &mut Lab) -> Result<()> {
    lab.install_shared_dir().await?;
    let first = lab.install_stack(checkout()?).await?;
    println!("stack, first run:\n{first}");
    ensure!(first.changes() > 0, "a fresh lab needs changes");

    let t = lab.topology.clone();
    let manager = lab.host(&t.hosts[0].name)?;

    // The swarm's view of the stack: its six services.
    let s = services(manager.as_ref(), STACK_NAME).await?;
    let mut names: Vec<String> = s.iter().map(|x| x.name.clone()).collect();
    names.sort();
    let want: Vec<String> = SERVICES
        .iter()
        .map(|n| format!("{STACK_NAME}_{n}"))
        .collect();
    ensure!(names == want, "services {names:?}, want {want:?}");

    // Without IPVS on any host: every service on DNS round robin and
    // nginx's ports on the nodes; with IPVS everywhere: as the file says.
    let mut ipvs = true;
    for h in lab.hosts() {
        ipvs &= has_ipvs(h.as_ref()).await?;
    }
    for name in &want {
        let out = Cmd::new([
            "docker",
            "service",
            "inspect",
            "--format",
            "{{json .Spec.EndpointSpec}}",
        ])
        .arg(name.clone())
        .check(manager.as_ref())
        .await?;
        let spec: Value = serde_json::from_str(out.stdout_lossy().trim())
            .with_context(|| format!("endpoint spec of `{name}`"))?;
        let mode = spec["Mode"].as_str().unwrap_or("vip");
        ensure!(
            (mode == "dnsrr") != ipvs,
            "`{name}`: endpoint mode `{mode}` with IPVS {ipvs}"
        );
        for p in spec["Ports"].as_array().into_iter().flatten() {
            let publish = p["PublishMode"].as_str().unwrap_or("ingress");
            ensure!(
                (publish == "host") != ipvs,
                "`{name}`: port {p} published in `{publish}` mode with IPVS {ipvs}"
            );
        }
    }
    println!("IPVS on every host: {ipvs}; endpoint modes and published ports as expected");

    // rabbitmq-cluster.conf: one node line per swarm node, as the rabbitmq
    // service names its tasks (`mq-{{.Node.Hostname}}`).
    let conf = manager
        .read_file(&format!(
            "{DEFAULT_DEST}/ke2/cluster/swarm/rabbitmq-cluster.conf"
        ))
        .await?
        .context("no rabbitmq-cluster.conf")?;
    let conf = String::from_utf8(conf)?;
    let mut nodes: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            k.trim()
                .starts_with("cluster_formation.classic_config.nodes.")
        })
        .map(|(_, v)| v.trim())
        .collect();
    nodes.sort();
    let mut want_nodes: Vec<String> = t
        .hosts
        .iter()
        .map(|h| format!("rabbit@mq-{}", h.name))
        .collect();
    want_nodes.sort();
    ensure!(
        nodes == want_nodes,
        "rabbitmq nodes {nodes:?}, want {want_nodes:?}"
    );

    // The certificates reached the shared ssl/ on every host, byte for byte.
    let made = manager
        .read_file(&format!("{DEFAULT_DEST}/ssl/server.crt"))
        .await?
        .context("no server certificate in the checkout's ssl/")?;
    for h in lab.hosts() {
        let shared = h
            .read_file(&format!("{}/ssl/server.crt", t.shared_dir.path))
            .await?;
        ensure!(
            shared.as_deref() == Some(made.as_slice()),
            "`{}` does not see the server certificate in the shared ssl/",
            h.name()
        );
    }

    let again = lab.install_stack(checkout()?).await?;
    ensure!(again.changes() == 0, "a re-run changed:\n{again}");
    Ok(())
}

#[tokio::test]
async fn stack_files_and_deploy_from_the_pinned_checkout() -> Result<()> {
    let topology = Topology::fixture("three-node")?.topology;
    let mut lab = Lab::boot(&topology, keep_on_failure()).await?;
    let outcome = stack(&mut lab).await;
    lab.finish(outcome).await
}
