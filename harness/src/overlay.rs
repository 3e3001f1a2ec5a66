//! A tiny workload on the swarm's overlay network: a busybox image made in
//! each host's engine from the host image's busybox (no registry), an HTTP
//! server container on one node, and ICMP/TCP probes from a container on
//! another node. It shows what an application sees across nodes.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use ke2lab::host::{Cmd, Host};
use serde::Deserialize;

pub const IMAGE: &str = "ke2lab/busybox:probe";
pub const NETWORK: &str = "ke2lab-probe";
const SERVER: &str = "ke2lab-probe-server";

/// Makes the busybox image inside the host's engine (idempotent). Applet
/// links are relative: absolute ones would point outside the image.
pub async fn busybox_image(h: &dyn Host) -> Result<()> {
    Cmd::sh(
        "set -e; docker image inspect \"$1\" >/dev/null 2>&1 && exit 0; \
         d=$(mktemp -d); mkdir -p \"$d/bin\" \"$d/www\"; cp /bin/busybox \"$d/bin/\"; \
         for a in $(/bin/busybox --list); do [ \"$a\" = busybox ] || ln -s busybox \"$d/bin/$a\"; done; \
         echo ke2lab-probe-ok > \"$d/www/index.html\"; \
         tar -C \"$d\" -c . | docker import -c 'ENV PATH=/bin' - \"$1\" >/dev/null; rm -rf \"$d\"",
    )
    .arg(IMAGE)
    .check(h)
    .await
    .with_context(|| format!("cannot make the busybox image on `{}`", h.name()))?;
    Ok(())
}

#[derive(Deserialize)]
struct Endpoint {
    #[serde(rename = "IPAddress")]
    ip: String,
}

/// Creates the attachable overlay network (from a manager) and starts the
/// HTTP server on `server`; returns the server's overlay address.
pub async fn start_server(manager: &dyn Host, server: &dyn Host) -> Result<Ipv4Addr> {
    Cmd::sh(
        "docker network inspect \"$1\" >/dev/null 2>&1 || docker network create -d overlay --attachable \"$1\" >/dev/null",
    )
    .arg(NETWORK)
    .check(manager)
    .await?;
    server
        .run(&Cmd::new(["docker", "rm", "-f", SERVER]))
        .await?;
    Cmd::new([
        "docker",
        "run",
        "-d",
        "--name",
        SERVER,
        "--network",
        NETWORK,
        IMAGE,
    ])
    .args_from(["httpd", "-f", "-p", "8080", "-h", "/www"])
    .check(server)
    .await?;
    let out = Cmd::new([
        "docker",
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        SERVER,
    ])
    .check(server)
    .await?;
    let nets: std::collections::BTreeMap<String, Endpoint> =
        serde_json::from_str(out.stdout_lossy().trim())
            .context("cannot parse the server's networks")?;
    match nets.get(NETWORK) {
        Some(e) => Ok(e.ip.parse()?),
        None => bail!("the probe server is not on `{NETWORK}`"),
    }
}

/// ICMP from a container on `client` to `ip`: true when replies came back.
pub async fn ping(client: &dyn Host, ip: Ipv4Addr) -> Result<bool> {
    let cmd = Cmd::new(["docker", "run", "--rm", "--network", NETWORK, IMAGE])
        .args_from(["ping", "-c", "3", "-W", "2"])
        .arg(ip.to_string());
    let out = client.run(&cmd).await?;
    Ok(out.success())
}

/// A TCP request (HTTP GET) from a container on `client`: the body when it
/// came back, `None` when the connection failed or timed out.
pub async fn http_get(client: &dyn Host, ip: Ipv4Addr) -> Result<Option<String>> {
    let cmd = Cmd::new(["docker", "run", "--rm", "--network", NETWORK, IMAGE])
        .args_from(["timeout", "10", "wget", "-T", "5", "-q", "-O", "-"])
        .arg(format!("http://{ip}:8080/"));
    let out = client.run(&cmd).await?;
    Ok(out.success().then(|| out.stdout_lossy().trim().to_string()))
}
