//! The Pgpool-II HA scripts, written by this project (procedure step 5 item
//! 9): `failover.sh`, `follow_primary.sh` and `escalation.sh` in Pgpool-II's
//! config directory, `recovery_1st_stage` and `pgpool_remote_start` in the
//! primary's PGDATA.
//!
//! They run as postgres, from Pgpool-II or from a PostgreSQL backend, where
//! `$HOME` may be unset: every path is absolute and comes from the
//! [`Layout`]. Work on another host goes over ssh with the postgres user's
//! `id_rsa_pgpool` key. A script runs its own `remote_*` shell functions
//! there (`on_host` ships their definitions and the settings they read), so
//! the remote code is part of the file and `bash -n` checks it too. Passwords
//! come from `.pgpass` and `.pcppass`; none is ever written into a script.

use crate::host::shell_quote;
use crate::layout::Layout;
use crate::topology::{Platform, Topology};

/// What the scripts are rendered from.
pub struct ScriptParams<'a> {
    /// The layout of the host the scripts are installed on.
    pub layout: &'a Layout,
    pub topology: &'a Topology,
    /// The VIP's interface, for hosts without their own override.
    pub interface: &'a str,
    /// The VIP's prefix length.
    pub prefix: u8,
}

/// The replication role that standbys connect as.
const REPL_USER: &str = "repl";
/// The PCP user that re-attaches a standby after `follow_primary.sh`.
const PCP_USER: &str = "pgpool";
/// How long a re-pointed or rebuilt standby may take to stream, in seconds.
const STREAM_WAIT_SECS: u32 = 60;
/// Mode of every script: executable by postgres (and Pgpool-II).
const SCRIPT_MODE: u32 = 0o755;
/// A PATH that holds ssh, sed, the PCP commands (`/usr/sbin` on Debian,
/// `/usr/bin` on RHEL) and `pg_ctlcluster`, whatever the caller's PATH was.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `failover.sh`, Pgpool-II's `failover_command`: promotes the new main node
/// when the primary failed.
pub fn failover_sh(p: &ScriptParams) -> String {
    let mut s = header(
        p,
        "failover.sh",
        &p.layout.in_pgpool_dir("failover.sh"),
        "failover_command",
        "failover.sh %d %h %p %D %m %H %M %P %r %R %N %S",
        &[
            "When the failed node was the primary, promotes the new main node",
            "(%H, PGDATA %R) with pg_ctl promote over ssh. A failed standby",
            "needs nothing (no replication slots are used).",
        ],
    );
    s.push_str(&settings(p, "failover.sh", &pg_vars(p)));
    s.push_str(ON_HOST_FN);
    s.push_str(PG_RUNNING_FN);
    s.push_str(PROMOTE_FN);
    s.push_str(FAILOVER_MAIN);
    s
}

/// `follow_primary.sh`, Pgpool-II's `follow_primary_command`: re-points a
/// running standby at the new primary and attaches it again.
pub fn follow_primary_sh(p: &ScriptParams) -> String {
    let mut s = header(
        p,
        "follow_primary.sh",
        &p.layout.in_pgpool_dir("follow_primary.sh"),
        "follow_primary_command",
        "follow_primary.sh %d %h %p %D %m %H %M %P %r %R",
        &[
            "Pgpool-II calls it for every node it holds down after a failover,",
            "the failed primary included. A node whose PostgreSQL does not run",
            "(or whose host does not answer) is left down for pcp_recovery_node.",
            "A running standby is stopped, rewound with pg_rewind (or rebuilt",
            "with pg_basebackup when that fails), pointed at the new primary",
            "(standby.signal + primary_conninfo), started, and attached with",
            "pcp_attach_node once it streams.",
        ],
    );
    let mut vars = standby_vars(p);
    vars.push(Var::plain("PCPPASSFILE", p.layout.in_home(".pcppass")));
    vars.push(Var::plain("PCP_PORT", p.topology.ports.pcp.to_string()));
    vars.push(Var::plain("PCP_USER", PCP_USER));
    s.push_str(&settings(p, "follow_primary.sh", &vars));
    s.push_str(ON_HOST_FN);
    s.push_str(PG_RUNNING_FN);
    s.push_str(&pg_start_stop_fns(p.layout));
    s.push_str(STANDBY_FNS);
    s.push_str(STREAMING_FN);
    s.push_str(FOLLOW_FN);
    s.push_str(FOLLOW_MAIN);
    s
}

/// `escalation.sh`, Pgpool-II's `wd_escalation_command`: removes the VIP
/// from every other host before this one brings it up.
pub fn escalation_sh(p: &ScriptParams) -> String {
    let t = p.topology;
    let mut s = header(
        p,
        "escalation.sh",
        &p.layout.in_pgpool_dir("escalation.sh"),
        "wd_escalation_command",
        "escalation.sh",
        &[
            "Runs on the host that becomes the watchdog leader, before it brings",
            "up the VIP: on every other cluster host that holds the VIP, deletes",
            "it. Unreachable hosts and errors are ignored; it always exits 0.",
        ],
    );
    let vars = vec![
        Var::plain("VIP", t.network.vip.to_string()),
        Var::plain("PREFIX", p.prefix.to_string()),
    ];
    s.push_str(&settings(p, "escalation.sh", &vars));
    s.push_str(ON_HOST_FN);
    s.push_str(ESCALATION_FNS);
    s.push_str(
        "log \"start: releasing $VIP/$PREFIX from the other cluster hosts\"\n\
         # One line per cluster host: name, VIP interface, ip and sudo there.\n",
    );
    for host in &t.hosts {
        let l = Layout::of(host.platform);
        let dev = t.interface_for(host).unwrap_or(p.interface);
        s.push_str(&format!(
            "release_vip_on {} {} {} {} &\n",
            q(&host.name),
            q(dev),
            q(l.ip_cmd),
            q(l.sudo)
        ));
    }
    s.push_str("wait\nlog \"end\"\nexit 0\n");
    s
}

/// `recovery_1st_stage`, Pgpool-II's `recovery_1st_stage_command`: rebuilds
/// the destination node from the primary with `pg_basebackup`.
pub fn recovery_1st_stage(p: &ScriptParams) -> String {
    let mut s = header(
        p,
        "recovery_1st_stage",
        &p.layout.in_pgdata("recovery_1st_stage"),
        "recovery_1st_stage_command (through pgpool_recovery() in the primary's backend, cwd = its PGDATA)",
        "recovery_1st_stage PRIMARY_NODE_PGDATA DEST_NODE_HOST DEST_NODE_PGDATA PRIMARY_NODE_PORT DEST_NODE_ID DEST_NODE_PORT PRIMARY_NODE_HOST",
        &[
            "On DEST_NODE_HOST over ssh: stops PostgreSQL if it runs, empties",
            "DEST_NODE_PGDATA, copies the primary with pg_basebackup (run there,",
            "so the data lands there), writes standby.signal and a primary_conninfo",
            "with application_name = DEST_NODE_HOST, and creates the archive dir.",
            "pgpool_remote_start starts the standby afterwards.",
        ],
    );
    let mut vars = standby_vars(p);
    vars.push(Var::plain(
        "ARCHIVE_DIR",
        p.topology.postgres.archive_dir.clone(),
    ));
    s.push_str(&settings(p, "recovery_1st_stage", &vars));
    s.push_str(ON_HOST_FN);
    s.push_str(PG_RUNNING_FN);
    s.push_str(&pg_start_stop_fns(p.layout));
    s.push_str(STANDBY_FNS);
    s.push_str(RECOVER_FN);
    s.push_str(RECOVERY_MAIN);
    s
}

/// `pgpool_remote_start`, run by Pgpool-II's online recovery after the first
/// stage: starts PostgreSQL on the recovered node.
pub fn pgpool_remote_start(p: &ScriptParams) -> String {
    let mut s = header(
        p,
        "pgpool_remote_start",
        &p.layout.in_pgdata("pgpool_remote_start"),
        "online recovery after recovery_1st_stage (through pgpool_remote_start() in the primary's backend)",
        "pgpool_remote_start DEST_NODE_HOST DEST_NODE_PGDATA",
        &[
            "Starts PostgreSQL on DEST_NODE_HOST over ssh unless it already runs,",
            "then waits until it streams from the primary. No replication slot",
            "holds the primary's WAL for it, so it must stream before the next",
            "recovery's pg_basebackup (a fast checkpoint, then a segment switch)",
            "lets the primary recycle the segment it starts from.",
        ],
    );
    s.push_str(&settings(p, "pgpool_remote_start", &remote_start_vars(p)));
    s.push_str(ON_HOST_FN);
    s.push_str(PG_RUNNING_FN);
    s.push_str(&pg_start_stop_fns(p.layout));
    s.push_str(STREAMING_FN);
    s.push_str(REMOTE_START_MAIN);
    s
}

/// Every script with its absolute install path and mode: the watchdog and
/// failover scripts in Pgpool-II's directory, the online-recovery scripts in
/// PGDATA (where `pgpool_recovery` looks for them).
pub fn all(p: &ScriptParams) -> Vec<(String, String, u32)> {
    let l = p.layout;
    vec![
        (l.in_pgpool_dir("failover.sh"), failover_sh(p), SCRIPT_MODE),
        (
            l.in_pgpool_dir("follow_primary.sh"),
            follow_primary_sh(p),
            SCRIPT_MODE,
        ),
        (
            l.in_pgpool_dir("escalation.sh"),
            escalation_sh(p),
            SCRIPT_MODE,
        ),
        (
            l.in_pgdata("recovery_1st_stage"),
            recovery_1st_stage(p),
            SCRIPT_MODE,
        ),
        (
            l.in_pgdata("pgpool_remote_start"),
            pgpool_remote_start(p),
            SCRIPT_MODE,
        ),
    ]
}

// ---------------------------------------------------------------------------
// Rendering helpers

/// Quotes a value for a bash assignment or argument.
fn q(s: &str) -> String {
    shell_quote(s)
}

/// A setting at the top of a script, shipped to remote hosts by `on_host`.
struct Var {
    name: &'static str,
    value: String,
    export: bool,
}

impl Var {
    fn plain(name: &'static str, value: impl Into<String>) -> Self {
        Var {
            name,
            value: value.into(),
            export: false,
        }
    }

    fn exported(name: &'static str, value: impl Into<String>) -> Self {
        Var {
            name,
            value: value.into(),
            export: true,
        }
    }
}

/// The PostgreSQL settings every database script uses.
fn pg_vars(p: &ScriptParams) -> Vec<Var> {
    vec![
        Var::plain("PG_BIN", p.layout.pg_bin),
        Var::plain("DEFAULT_PGDATA", p.layout.pgdata),
    ]
}

/// [`pg_vars`] and what waiting for a started standby to stream needs.
fn remote_start_vars(p: &ScriptParams) -> Vec<Var> {
    let mut vars = pg_vars(p);
    vars.extend([
        Var::plain("DEFAULT_PORT", p.topology.ports.postgres.to_string()),
        Var::plain("SOCKET_DIR", p.layout.socket_dir),
        Var::plain("STREAM_WAIT", STREAM_WAIT_SECS.to_string()),
    ]);
    vars
}

/// [`pg_vars`] and what building a standby needs besides.
fn standby_vars(p: &ScriptParams) -> Vec<Var> {
    let l = p.layout;
    let mut vars = pg_vars(p);
    vars.extend([
        Var::plain("DEFAULT_PORT", p.topology.ports.postgres.to_string()),
        Var::plain("PG_CONF", l.pg_conf),
        Var::plain("SOCKET_DIR", l.socket_dir),
        Var::plain("REPL_USER", REPL_USER),
        Var::plain("STREAM_WAIT", STREAM_WAIT_SECS.to_string()),
        // libpq (pg_basebackup, pg_rewind, psql, the walreceiver) reads the
        // passwords from here; $HOME may be unset.
        Var::exported("PGPASSFILE", l.in_home(".pgpass")),
    ]);
    vars
}

fn header(
    p: &ScriptParams,
    name: &str,
    path: &str,
    caller: &str,
    call: &str,
    what: &[&str],
) -> String {
    let mut s = format!(
        "#!/bin/bash\n\
         # {name}: rendered by ke2lab for platform {platform}; ke2lab rewrites it on\n\
         # every run, so edit the renderer (src/render/scripts.rs), not this file.\n\
         # Installed as {path}; runs as postgres.\n\
         # Called by Pgpool-II's {caller} as:\n\
         #   {call}\n\
         #\n",
        platform = p.layout.platform.as_str(),
    );
    for line in what {
        s.push_str(&format!("# {line}\n"));
    }
    s.push_str(
        "#\n\
         # No password is written here: libpq reads .pgpass, PCP reads .pcppass.\n\
         set -o pipefail\n\n",
    );
    s
}

/// The settings block: the script's name, its variables, PATH, and the list
/// of variables `on_host` ships to the remote side.
fn settings(p: &ScriptParams, name: &str, vars: &[Var]) -> String {
    let mut s = format!("SCRIPT={}\n", q(name));
    for v in vars {
        let export = if v.export { "export " } else { "" };
        s.push_str(&format!("{export}{}={}\n", v.name, q(&v.value)));
    }
    s.push_str(&format!("export PATH={}\n", q(PATH)));
    s.push_str(&format!("SSH_KEY={}\n", q(&p.layout.ssh_key())));
    s.push_str(
        "SSH_OPTS=(-i \"$SSH_KEY\" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n          \
         -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR)\n",
    );
    let names: Vec<&str> = std::iter::once("SCRIPT")
        .chain(vars.iter().map(|v| v.name))
        .chain(std::iter::once("PATH"))
        .collect();
    s.push_str(&format!("SHARED_VARS=({})\n\n", names.join(" ")));
    s
}

/// Starting and stopping PostgreSQL on the host the function runs on.
fn pg_start_stop_fns(l: &Layout) -> String {
    match l.platform {
        // Debian keeps the cluster's configuration in /etc, so a bare `pg_ctl
        // -D PGDATA start` cannot start it: the start passes `config_file`
        // and the package's log file as pg_ctlcluster does (its own start,
        // as a user other than root, is that pg_ctl plus fixed waits; the
        // package's postgresql.conf names data_directory, hba_file,
        // ident_file, external_pid_file and the socket directory itself).
        Platform::Debian => DEBIAN_START_STOP_FNS
            .replace("{{VERSION}}", &l.pg_version.to_string())
            .replace("{{PG_LOG}}", &q(l.pg_log))
            .replace("{{PG_CONF}}", l.pg_conf),
        Platform::Rhel9 => RHEL9_START_STOP_FNS.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Shell text. `remote_*` functions run on another host through `on_host`;
// they see the settings in SHARED_VARS and call only `log` and other
// `remote_*` functions.

const ON_HOST_FN: &str = r##"# log TEXT: one line with the time (to the millisecond, like Pgpool-II's own
# lines), so the log of a recovery or failover shows where its time went.
log() { echo "$(date '+%F %T.%3N') $SCRIPT: $*"; }

# on_host HOST FUNCTION [ARG...]: runs FUNCTION on HOST as postgres over ssh,
# shipping the settings in SHARED_VARS and every remote_* function; returns
# the function's exit status (255 when ssh fails).
on_host() {
    local host="$1" fn="$2"
    shift 2
    {
        echo 'set -o pipefail'
        declare -p "${SHARED_VARS[@]}"
        declare -f log $(compgen -A function remote_)
        printf '%s' "$fn"
        if [ "$#" -gt 0 ]; then printf ' %q' "$@"; fi
        echo
    } | ssh -T "${SSH_OPTS[@]}" "postgres@${host}" bash -s
}

"##;

const PG_RUNNING_FN: &str = r##"# remote_pg_running PGDATA: exit 0 when PostgreSQL runs on this host.
remote_pg_running() {
    "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

"##;

const DEBIAN_START_STOP_FNS: &str = r##"# remote_pg_start PGDATA: starts PostgreSQL on this host unless it runs. The
# cluster's configuration is in /etc, so the server gets it as config_file and
# logs where the package's cluster logs: what pg_ctlcluster runs as a user
# other than root. pg_ctl -w returns once the server accepts connections
# (it polls every 0.1 s); pg_ctlcluster would add its own fixed waits after
# that (0.5 s, then three psql probes 0.5 s apart: 2 s or more per start,
# paid by every online recovery and every follow_primary).
remote_pg_start() {
    if remote_pg_running "$1"; then
        log "PostgreSQL already runs on $(hostname)"
        return 0
    fi
    log "starting PostgreSQL on $(hostname)"
    LANG=C.UTF-8 "$PG_BIN/pg_ctl" -D "$1" -l {{PG_LOG}} -w -s \
        -o "-c config_file=\"{{PG_CONF}}\"" start </dev/null
}

# remote_pg_stop PGDATA: stops PostgreSQL on this host if it runs.
remote_pg_stop() {
    remote_pg_running "$1" || return 0
    log "stopping PostgreSQL on $(hostname)"
    LANG=C.UTF-8 pg_ctlcluster {{VERSION}} main stop -m fast </dev/null
}

"##;

const RHEL9_START_STOP_FNS: &str = r##"# remote_pg_start PGDATA: starts PostgreSQL on this host unless it runs.
remote_pg_start() {
    if remote_pg_running "$1"; then
        log "PostgreSQL already runs on $(hostname)"
        return 0
    fi
    log "starting PostgreSQL on $(hostname)"
    LANG=C.UTF-8 "$PG_BIN/pg_ctl" -D "$1" -l /dev/null -w start </dev/null
}

# remote_pg_stop PGDATA: stops PostgreSQL on this host if it runs.
remote_pg_stop() {
    remote_pg_running "$1" || return 0
    log "stopping PostgreSQL on $(hostname)"
    "$PG_BIN/pg_ctl" -D "$1" -w -m fast stop </dev/null
}

"##;

const PROMOTE_FN: &str = r##"# remote_promote PGDATA: promotes the standby on this host (pg_ctl promote
# only signals the running server, so it needs nothing but PGDATA).
remote_promote() {
    local pgdata="$1"
    if ! remote_pg_running "$pgdata"; then
        log "ERROR: PostgreSQL does not run on $(hostname)"
        return 1
    fi
    if [ ! -e "$pgdata/standby.signal" ]; then
        log "$(hostname) has no standby.signal: already a primary"
        return 0
    fi
    "$PG_BIN/pg_ctl" -D "$pgdata" -w promote
}

"##;

const STANDBY_FNS: &str = r##"# remote_clear_pgdata PGDATA: empties PGDATA (made if missing, mode 700).
remote_clear_pgdata() {
    local pgdata="$1"
    case "$pgdata" in
        /?*/?*) ;;
        *)
            log "ERROR: refusing to empty PGDATA '$pgdata'"
            return 1
            ;;
    esac
    mkdir -p -- "$pgdata" && chmod 700 -- "$pgdata" || return 1
    find "$pgdata" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + || return 1
}

# remote_basebackup PGDATA PRIMARY_HOST PRIMARY_PORT: copies the primary into
# an emptied PGDATA on this host.
remote_basebackup() {
    local pgdata="$1" primary="$2" port="$3"
    remote_clear_pgdata "$pgdata" || return 1
    log "pg_basebackup from $primary:$port into $pgdata on $(hostname)"
    "$PG_BIN/pg_basebackup" -h "$primary" -p "$port" -U "$REPL_USER" -w \
        -D "$pgdata" -X stream -R -c fast
}

# remote_standby_conf PGDATA PRIMARY_HOST PRIMARY_PORT APPLICATION_NAME:
# makes PGDATA a standby of that primary. Every older primary_conninfo line
# (pg_basebackup -R writes one without application_name) is replaced.
remote_standby_conf() {
    local pgdata="$1" primary="$2" port="$3" app="$4"
    local auto="$pgdata/postgresql.auto.conf"
    touch "$auto" || return 1
    sed -i -e '/^[[:space:]]*primary_conninfo[[:space:]]*=/d' "$auto" || return 1
    printf "primary_conninfo = 'host=%s port=%s user=%s application_name=%s passfile=%s'\n" \
        "$primary" "$port" "$REPL_USER" "$app" "$PGPASSFILE" >>"$auto" || return 1
    touch "$pgdata/standby.signal"
}

"##;

const STREAMING_FN: &str = r##"# remote_wait_streaming PORT: waits until the local standby streams, asking
# every 0.2 s (the receiver usually connects within 0.1 s of the start; a
# 1 s poll cost half a second per recovery), for at most STREAM_WAIT s.
remote_wait_streaming() {
    local port="$1" i status
    for ((i = 0; i < STREAM_WAIT * 5; i++)); do
        status=$("$PG_BIN/psql" -h "$SOCKET_DIR" -p "$port" -d postgres -XAtq \
            -c 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null)
        if [ "$status" = streaming ]; then
            log "$(hostname) streams"
            return 0
        fi
        sleep 0.2
    done
    log "ERROR: $(hostname) does not stream after $STREAM_WAIT s"
    return 1
}

"##;

const FOLLOW_FN: &str = r##"# remote_follow PGDATA PORT PRIMARY_HOST PRIMARY_PORT APPLICATION_NAME:
# re-points the standby on this host at a new primary: pg_rewind, else a
# fresh pg_basebackup; then standby settings, start, and wait for streaming.
remote_follow() {
    local pgdata="$1" port="$2" primary="$3" primary_port="$4" app="$5"
    local source="host=$primary port=$primary_port user=postgres dbname=postgres connect_timeout=10"
    remote_pg_stop "$pgdata" || return 1
    # The promotion's checkpoint records the new timeline, which pg_rewind
    # compares against.
    "$PG_BIN/psql" -d "$source" -XAtq -c 'CHECKPOINT' >/dev/null 2>&1
    log "pg_rewind of $pgdata on $(hostname) from $primary:$primary_port"
    if "$PG_BIN/pg_rewind" -D "$pgdata" --config-file="$PG_CONF" --source-server="$source"; then
        if remote_standby_conf "$pgdata" "$primary" "$primary_port" "$app" \
            && remote_pg_start "$pgdata" \
            && remote_wait_streaming "$port"; then
            return 0
        fi
        log "the rewound standby on $(hostname) does not stream; rebuilding it"
        remote_pg_stop "$pgdata" || return 1
    else
        log "pg_rewind failed on $(hostname); rebuilding with pg_basebackup"
    fi
    remote_basebackup "$pgdata" "$primary" "$primary_port" \
        && remote_standby_conf "$pgdata" "$primary" "$primary_port" "$app" \
        && remote_pg_start "$pgdata" \
        && remote_wait_streaming "$port"
}

"##;

const RECOVER_FN: &str = r##"# remote_recover PGDATA PRIMARY_HOST PRIMARY_PORT APPLICATION_NAME: rebuilds
# this host's PostgreSQL as a standby of the primary (left stopped).
remote_recover() {
    local pgdata="$1" primary="$2" port="$3" app="$4"
    remote_pg_stop "$pgdata" || return 1
    remote_basebackup "$pgdata" "$primary" "$port" || return 1
    remote_standby_conf "$pgdata" "$primary" "$port" "$app" || return 1
    if mkdir -p -- "$ARCHIVE_DIR" && chmod 700 -- "$ARCHIVE_DIR"; then
        :
    else
        log "WARNING: could not make the archive dir $ARCHIVE_DIR on $(hostname)"
    fi
}

"##;

const FAILOVER_MAIN: &str = r##"FAILED_NODE_ID="$1"
FAILED_NODE_HOST="$2"
FAILED_NODE_PORT="$3"
FAILED_NODE_PGDATA="$4"
NEW_MAIN_NODE_ID="$5"
NEW_MAIN_NODE_HOST="$6"
OLD_MAIN_NODE_ID="$7"
OLD_PRIMARY_NODE_ID="$8"
NEW_MAIN_NODE_PORT="$9"
NEW_MAIN_NODE_PGDATA="${10:-$DEFAULT_PGDATA}"
OLD_PRIMARY_NODE_HOST="${11}"
OLD_PRIMARY_NODE_PORT="${12}"

log "start: failed node $FAILED_NODE_ID ($FAILED_NODE_HOST:$FAILED_NODE_PORT $FAILED_NODE_PGDATA)," \
    "old primary $OLD_PRIMARY_NODE_ID ($OLD_PRIMARY_NODE_HOST:$OLD_PRIMARY_NODE_PORT)," \
    "old main $OLD_MAIN_NODE_ID, new main $NEW_MAIN_NODE_ID ($NEW_MAIN_NODE_HOST:$NEW_MAIN_NODE_PORT)"

if [ "$FAILED_NODE_ID" != "$OLD_PRIMARY_NODE_ID" ]; then
    log "end: node $FAILED_NODE_ID was a standby; nothing to do"
    exit 0
fi
if [ -z "$NEW_MAIN_NODE_HOST" ] || [ "$NEW_MAIN_NODE_ID" = "-1" ]; then
    log "end: no node is left to promote"
    exit 0
fi

log "promoting node $NEW_MAIN_NODE_ID on $NEW_MAIN_NODE_HOST ($NEW_MAIN_NODE_PGDATA)"
if ! on_host "$NEW_MAIN_NODE_HOST" remote_promote "$NEW_MAIN_NODE_PGDATA"; then
    log "ERROR: promoting node $NEW_MAIN_NODE_ID on $NEW_MAIN_NODE_HOST failed"
    exit 1
fi
log "end: node $NEW_MAIN_NODE_ID on $NEW_MAIN_NODE_HOST is the new primary"
exit 0
"##;

const FOLLOW_MAIN: &str = r##"NODE_ID="$1"
NODE_HOST="$2"
NODE_PORT="${3:-$DEFAULT_PORT}"
NODE_PGDATA="${4:-$DEFAULT_PGDATA}"
NEW_PRIMARY_ID="$5"
NEW_PRIMARY_HOST="$6"
OLD_MAIN_NODE_ID="$7"
OLD_PRIMARY_NODE_ID="$8"
NEW_PRIMARY_PORT="${9:-$DEFAULT_PORT}"
NEW_PRIMARY_PGDATA="${10}"

log "start: node $NODE_ID ($NODE_HOST:$NODE_PORT $NODE_PGDATA) follows new primary" \
    "$NEW_PRIMARY_ID ($NEW_PRIMARY_HOST:$NEW_PRIMARY_PORT $NEW_PRIMARY_PGDATA);" \
    "old primary $OLD_PRIMARY_NODE_ID, old main $OLD_MAIN_NODE_ID"

if [ -z "$NODE_HOST" ] || [ -z "$NEW_PRIMARY_HOST" ] || [ "$NEW_PRIMARY_ID" = "-1" ]; then
    log "end: no new primary to follow"
    exit 0
fi
if [ "$NODE_ID" = "$NEW_PRIMARY_ID" ]; then
    log "end: node $NODE_ID is the new primary itself"
    exit 0
fi
if ! on_host "$NODE_HOST" remote_pg_running "$NODE_PGDATA"; then
    log "end: PostgreSQL does not run on $NODE_HOST (or the host does not answer);" \
        "node $NODE_ID stays down until pcp_recovery_node rebuilds it"
    exit 0
fi

if ! on_host "$NODE_HOST" remote_follow "$NODE_PGDATA" "$NODE_PORT" \
    "$NEW_PRIMARY_HOST" "$NEW_PRIMARY_PORT" "$NODE_HOST"; then
    log "ERROR: node $NODE_ID on $NODE_HOST could not follow $NEW_PRIMARY_HOST; it stays down"
    exit 1
fi

log "attaching node $NODE_ID"
if ! PCPPASSFILE="$PCPPASSFILE" pcp_attach_node -w -h localhost -p "$PCP_PORT" -U "$PCP_USER" -n "$NODE_ID"; then
    log "ERROR: pcp_attach_node -n $NODE_ID failed"
    exit 1
fi
log "end: node $NODE_ID on $NODE_HOST streams from $NEW_PRIMARY_HOST and is attached"
exit 0
"##;

const ESCALATION_FNS: &str = r##"# remote_release_vip DEV IP_CMD SUDO: deletes the VIP from DEV on this host
# if it holds it there.
remote_release_vip() {
    local dev="$1" ip_cmd="$2" sudo_cmd="$3"
    if ! "$ip_cmd" -o -4 addr show dev "$dev" 2>/dev/null | grep -qF " $VIP/$PREFIX "; then
        log "$(hostname) does not hold $VIP/$PREFIX on $dev"
        return 0
    fi
    if "$sudo_cmd" -n "$ip_cmd" addr del "$VIP/$PREFIX" dev "$dev"; then
        log "deleted $VIP/$PREFIX from $dev on $(hostname)"
    else
        log "WARNING: could not delete $VIP/$PREFIX from $dev on $(hostname)"
    fi
}

# is_this_host NAME: exit 0 when NAME names the host this runs on.
is_this_host() {
    local name="${1,,}" me
    for me in "$(hostname)" "$(hostname -s 2>/dev/null)"; do
        me="${me,,}"
        if [ -n "$me" ] && { [ "$me" = "$name" ] || [ "$me" = "${name%%.*}" ] || [ "${me%%.*}" = "$name" ]; }; then
            return 0
        fi
    done
    return 1
}

# release_vip_on HOST DEV IP_CMD SUDO: the VIP off HOST unless HOST is this
# host; failures (host down, no ssh) are logged and ignored.
release_vip_on() {
    local host="$1"
    if is_this_host "$host"; then
        log "skipping $host: this host takes the VIP"
        return 0
    fi
    if ! on_host "$host" remote_release_vip "$2" "$3" "$4"; then
        log "WARNING: could not reach $host; ignored"
    fi
    return 0
}

"##;

const RECOVERY_MAIN: &str = r##"PRIMARY_NODE_PGDATA="$1"
DEST_NODE_HOST="$2"
DEST_NODE_PGDATA="${3:-$DEFAULT_PGDATA}"
PRIMARY_NODE_PORT="${4:-$DEFAULT_PORT}"
DEST_NODE_ID="$5"
DEST_NODE_PORT="$6"
PRIMARY_NODE_HOST="${7:-$(hostname)}"

log "start: rebuilding node $DEST_NODE_ID ($DEST_NODE_HOST:$DEST_NODE_PORT $DEST_NODE_PGDATA)" \
    "from the primary $PRIMARY_NODE_HOST:$PRIMARY_NODE_PORT ($PRIMARY_NODE_PGDATA)"

if [ -z "$DEST_NODE_HOST" ]; then
    log "ERROR: no destination host (expected PRIMARY_NODE_PGDATA DEST_NODE_HOST DEST_NODE_PGDATA ...)"
    exit 1
fi
if ! on_host "$DEST_NODE_HOST" remote_recover "$DEST_NODE_PGDATA" \
    "$PRIMARY_NODE_HOST" "$PRIMARY_NODE_PORT" "$DEST_NODE_HOST"; then
    log "ERROR: rebuilding node $DEST_NODE_ID on $DEST_NODE_HOST failed"
    exit 1
fi
log "end: node $DEST_NODE_ID on $DEST_NODE_HOST is a standby of $PRIMARY_NODE_HOST (not started yet)"
exit 0
"##;

const REMOTE_START_MAIN: &str = r##"DEST_NODE_HOST="$1"
DEST_NODE_PGDATA="${2:-$DEFAULT_PGDATA}"

log "start: starting PostgreSQL on $DEST_NODE_HOST ($DEST_NODE_PGDATA)"
if [ -z "$DEST_NODE_HOST" ]; then
    log "ERROR: no destination host (expected DEST_NODE_HOST DEST_NODE_PGDATA)"
    exit 1
fi
if ! on_host "$DEST_NODE_HOST" remote_pg_start "$DEST_NODE_PGDATA"; then
    log "ERROR: starting PostgreSQL on $DEST_NODE_HOST failed"
    exit 1
fi
if ! on_host "$DEST_NODE_HOST" remote_wait_streaming "$DEFAULT_PORT"; then
    log "ERROR: PostgreSQL on $DEST_NODE_HOST runs but does not stream"
    exit 1
fi
log "end: PostgreSQL runs on $DEST_NODE_HOST and streams"
exit 0
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Credentials;
    use std::path::Path;
    use std::process::Command;

    fn topo(platform: Platform) -> Topology {
        let mut t = Topology::fixture("three-node").unwrap().topology;
        for h in &mut t.hosts {
            h.platform = platform;
        }
        t
    }

    fn params<'a>(t: &'a Topology, platform: Platform) -> ScriptParams<'a> {
        ScriptParams {
            layout: Layout::of(platform),
            topology: t,
            interface: "eth0",
            prefix: 24,
        }
    }

    type Render = fn(&ScriptParams) -> String;
    const SCRIPTS: [(&str, Render); 5] = [
        ("failover", failover_sh),
        ("follow_primary", follow_primary_sh),
        ("escalation", escalation_sh),
        ("recovery_1st_stage", recovery_1st_stage),
        ("pgpool_remote_start", pgpool_remote_start),
    ];

    fn every_script(mut f: impl FnMut(Platform, &str, String)) {
        for platform in [Platform::Debian, Platform::Rhel9] {
            let t = topo(platform);
            let p = params(&t, platform);
            for (name, render) in SCRIPTS {
                f(platform, name, render(&p));
            }
        }
    }

    #[test]
    fn snapshots() {
        every_script(|platform, name, body| {
            insta::assert_snapshot!(format!("{}_{name}", platform.as_str()), body);
        });
    }

    fn bash_n(text: &str) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script");
        std::fs::write(&path, text).unwrap();
        Command::new("bash").arg("-n").arg(&path).output().unwrap()
    }

    #[test]
    fn every_script_parses() {
        every_script(|platform, name, body| {
            let out = bash_n(&body);
            assert!(
                out.status.success(),
                "{platform:?} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
    }

    #[test]
    fn no_home_relative_path() {
        every_script(|platform, name, body| {
            assert!(!body.contains("$HOME"), "{platform:?} {name}");
            assert!(!body.contains("${HOME"), "{platform:?} {name}");
            assert!(!body.contains("~/"), "{platform:?} {name}");
        });
    }

    #[test]
    fn every_script_is_bash_with_pipefail_and_a_header() {
        every_script(|platform, name, body| {
            assert!(body.starts_with("#!/bin/bash\n"), "{name}");
            assert!(body.contains("\nset -o pipefail\n"), "{name}");
            assert!(
                body.contains(&format!(
                    "rendered by ke2lab for platform {}",
                    platform.as_str()
                )),
                "{name}"
            );
        });
    }

    #[test]
    fn absolute_paths_from_the_layout() {
        every_script(|platform, name, body| {
            let l = Layout::of(platform);
            if name != "escalation" {
                assert!(body.contains(&format!("PG_BIN={}\n", l.pg_bin)), "{name}");
                assert!(
                    body.contains(&format!("DEFAULT_PGDATA={}\n", l.pgdata)),
                    "{name}"
                );
            }
            if ["follow_primary", "recovery_1st_stage"].contains(&name) {
                assert!(
                    body.contains(&format!("export PGPASSFILE={}/.pgpass\n", l.postgres_home)),
                    "{name}"
                );
            }
            assert!(body.contains(&format!("SSH_KEY={}", l.ssh_key())), "{name}");
            for opt in [
                "StrictHostKeyChecking=no",
                "UserKnownHostsFile=/dev/null",
                "BatchMode=yes",
                "ConnectTimeout=5",
                "LogLevel=ERROR",
            ] {
                assert!(body.contains(opt), "{name}: {opt}");
            }
        });
    }

    #[test]
    fn platform_start_commands() {
        let t = topo(Platform::Debian);
        let deb = pgpool_remote_start(&params(&t, Platform::Debian));
        assert!(deb.contains(
            "LANG=C.UTF-8 \"$PG_BIN/pg_ctl\" -D \"$1\" -l /var/log/postgresql/postgresql-17-main.log -w -s \\\n        -o \"-c config_file=\\\"/etc/postgresql/17/main/postgresql.conf\\\"\" start"
        ));
        assert!(!deb.contains("pg_ctlcluster 17 main start"));
        assert!(!deb.contains("\"$PG_BIN/pg_ctl\" -D \"$1\" -l /dev/null -w start"));
        let t = topo(Platform::Rhel9);
        let rhel = pgpool_remote_start(&params(&t, Platform::Rhel9));
        assert!(rhel.contains("LANG=C.UTF-8 \"$PG_BIN/pg_ctl\" -D \"$1\" -l /dev/null -w start"));
        assert!(!rhel.contains("pg_ctlcluster"));
        assert!(rhel.contains("PG_BIN=/usr/pgsql-16/bin"));
    }

    #[test]
    fn escalation_bakes_hosts_vip_prefix_and_interface() {
        for platform in [Platform::Debian, Platform::Rhel9] {
            let t = topo(platform);
            let body = escalation_sh(&params(&t, platform));
            for h in &t.hosts {
                assert!(
                    body.contains(&format!(
                        "release_vip_on {} eth0 /sbin/ip /usr/bin/sudo &",
                        h.name
                    )),
                    "{}",
                    h.name
                );
            }
            assert!(body.contains("VIP=10.20.0.100\n"));
            assert!(body.contains("PREFIX=24\n"));
        }
    }

    #[test]
    fn escalation_uses_a_host_interface_override() {
        let mut t = topo(Platform::Debian);
        t.hosts[1].interface = Some("ens192".into());
        let body = escalation_sh(&params(&t, Platform::Debian));
        assert!(body.contains("release_vip_on ke2-server1 eth0 "));
        assert!(body.contains("release_vip_on ke2-server2 ens192 "));
    }

    #[test]
    fn no_credentials_in_scripts() {
        let creds = Credentials::document_defaults();
        let users = ["postgres", "repl", "pgpool", "kompira"];
        let secrets = [
            &creds.postgres,
            &creds.repl,
            &creds.pgpool,
            &creds.kompira,
            &creds.pgpool_key,
        ];
        every_script(|platform, name, body| {
            for s in secrets {
                if !users.contains(&s.expose()) {
                    assert!(!body.contains(s.expose()), "{platform:?} {name}");
                }
            }
            assert!(!body.contains("password="), "{platform:?} {name}");
            assert!(!body.contains("PGPASSWORD"), "{platform:?} {name}");
        });
    }

    #[test]
    fn all_installs_where_pgpool_looks() {
        let t = topo(Platform::Debian);
        let p = params(&t, Platform::Debian);
        let files = all(&p);
        let paths: Vec<&str> = files.iter().map(|(path, _, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/pgpool2/failover.sh",
                "/etc/pgpool2/follow_primary.sh",
                "/etc/pgpool2/escalation.sh",
                "/var/lib/postgresql/17/main/recovery_1st_stage",
                "/var/lib/postgresql/17/main/pgpool_remote_start",
            ]
        );
        for (path, body, mode) in &files {
            assert_eq!(*mode, 0o755, "{path}");
            assert!(body.contains(&format!("# Installed as {path};")), "{path}");
        }
        let t = topo(Platform::Rhel9);
        let files = all(&params(&t, Platform::Rhel9));
        assert_eq!(files[0].0, "/etc/pgpool-II/failover.sh");
        assert_eq!(files[3].0, "/var/lib/pgsql/16/data/recovery_1st_stage");
    }

    // --- Running the scripts with fake ssh / pcp_attach_node / hostname ---

    struct Run {
        status: i32,
        stdout: String,
        calls: Vec<String>,
        payloads: Vec<String>,
    }

    /// Runs `body` with bash functions standing in for ssh (records its
    /// arguments and what it would run remotely, exits `ssh_rc`),
    /// pcp_attach_node and hostname (`ke2-server1`). Exported functions win
    /// over the script's PATH.
    fn run(body: &str, args: &[&str], ssh_rc: i32) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, body).unwrap();
        let fakes = r#"
ssh() { echo "ssh $*" >>"$FAKE_DIR/calls"; cat >"$(mktemp "$FAKE_DIR/payload.XXXXXX")"; return "$FAKE_SSH_RC"; }
pcp_attach_node() { echo "PCPPASSFILE=$PCPPASSFILE pcp_attach_node $*" >>"$FAKE_DIR/calls"; }
hostname() { echo ke2-server1; }
export -f ssh pcp_attach_node hostname
exec bash "$@"
"#;
        let out = Command::new("bash")
            .arg("-c")
            .arg(fakes)
            .arg("fakes")
            .arg(&script)
            .args(args)
            .env("FAKE_DIR", dir.path())
            .env("FAKE_SSH_RC", ssh_rc.to_string())
            .env_remove("HOME")
            .output()
            .unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut calls: Vec<String> = read(&dir.path().join("calls"))
            .lines()
            .map(str::to_string)
            .collect();
        calls.sort();
        let mut payloads: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("payload.")
            })
            .map(|p| read(&p))
            .collect();
        payloads.sort();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            calls,
            payloads,
        }
    }

    fn debian(render: Render) -> String {
        let t = topo(Platform::Debian);
        render(&params(&t, Platform::Debian))
    }

    const PGDATA: &str = "/var/lib/postgresql/17/main";

    #[test]
    fn failover_of_a_standby_does_nothing() {
        let r = run(
            &debian(failover_sh),
            &[
                "2",
                "ke2-server3",
                "5432",
                PGDATA,
                "0",
                "ke2-server1",
                "0",
                "0",
                "5432",
                PGDATA,
                "ke2-server1",
                "5432",
            ],
            0,
        );
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert!(r.calls.is_empty(), "{:?}", r.calls);
        assert!(
            r.stdout.contains("failover.sh: end: node 2 was a standby"),
            "{}",
            r.stdout
        );
    }

    #[test]
    fn failover_without_a_new_main_does_nothing() {
        let r = run(
            &debian(failover_sh),
            &[
                "0",
                "ke2-server1",
                "5432",
                PGDATA,
                "-1",
                "",
                "0",
                "0",
                "",
                "",
                "ke2-server1",
                "5432",
            ],
            0,
        );
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert!(r.calls.is_empty(), "{:?}", r.calls);
    }

    #[test]
    fn failover_of_the_primary_promotes_the_new_main() {
        let args = [
            "0",
            "ke2-server1",
            "5432",
            PGDATA,
            "1",
            "ke2-server2",
            "0",
            "0",
            "5432",
            PGDATA,
            "ke2-server1",
            "5432",
        ];
        let r = run(&debian(failover_sh), &args, 0);
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert_eq!(r.calls.len(), 1, "{:?}", r.calls);
        assert!(
            r.calls[0].contains("postgres@ke2-server2 bash -s"),
            "{:?}",
            r.calls
        );
        assert!(
            r.calls[0].contains("-i /var/lib/postgresql/.ssh/id_rsa_pgpool"),
            "{:?}",
            r.calls
        );
        let payload = &r.payloads[0];
        assert!(
            payload
                .trim_end()
                .ends_with(&format!("remote_promote {PGDATA}")),
            "{payload}"
        );
        assert!(
            payload.contains("\"$PG_BIN/pg_ctl\" -D \"$pgdata\" -w promote"),
            "{payload}"
        );
        assert!(bash_n(payload).status.success(), "{payload}");
        // A failed promotion fails the script.
        let r = run(&debian(failover_sh), &args, 1);
        assert_eq!(r.status, 1, "{}", r.stdout);
        assert!(r.stdout.contains("ERROR: promoting node 1"), "{}", r.stdout);
    }

    #[test]
    fn follow_primary_skips_the_new_primary() {
        let r = run(
            &debian(follow_primary_sh),
            &[
                "1",
                "ke2-server2",
                "5432",
                PGDATA,
                "1",
                "ke2-server2",
                "0",
                "0",
                "5432",
                PGDATA,
            ],
            0,
        );
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert!(r.calls.is_empty(), "{:?}", r.calls);
    }

    #[test]
    fn follow_primary_leaves_a_stopped_node_down() {
        let r = run(
            &debian(follow_primary_sh),
            &[
                "0",
                "ke2-server1",
                "5432",
                PGDATA,
                "1",
                "ke2-server2",
                "0",
                "0",
                "5432",
                PGDATA,
            ],
            3,
        );
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert_eq!(r.calls.len(), 1, "{:?}", r.calls);
        assert!(!r.calls.iter().any(|c| c.contains("pcp_attach_node")));
        assert!(
            r.stdout.contains("stays down until pcp_recovery_node"),
            "{}",
            r.stdout
        );
    }

    #[test]
    fn follow_primary_repoints_and_attaches_a_running_standby() {
        let r = run(
            &debian(follow_primary_sh),
            &[
                "2",
                "ke2-server3",
                "5432",
                PGDATA,
                "1",
                "ke2-server2",
                "0",
                "0",
                "5432",
                PGDATA,
            ],
            0,
        );
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert_eq!(r.calls.len(), 3, "{:?}", r.calls);
        assert_eq!(
            r.calls[0],
            "PCPPASSFILE=/var/lib/postgresql/.pcppass pcp_attach_node -w -h localhost -p 9898 -U pgpool -n 2"
        );
        assert!(
            r.calls[1..]
                .iter()
                .all(|c| c.ends_with("postgres@ke2-server3 bash -s"))
        );
        let follow = r
            .payloads
            .iter()
            .find(|p| p.contains("\nremote_follow "))
            .unwrap();
        assert!(
            follow.trim_end().ends_with(&format!(
                "remote_follow {PGDATA} 5432 ke2-server2 5432 ke2-server3"
            )),
            "{follow}"
        );
        assert!(follow.contains("pg_rewind"), "{follow}");
        assert!(
            follow.contains("declare -x PGPASSFILE=\"/var/lib/postgresql/.pgpass\""),
            "{follow}"
        );
        assert!(bash_n(follow).status.success(), "{follow}");
    }

    #[test]
    fn standby_conninfo_names_the_node() {
        let body = debian(recovery_1st_stage);
        assert!(body.contains(
            "primary_conninfo = 'host=%s port=%s user=%s application_name=%s passfile=%s'"
        ));
        assert!(body.contains("sed -i -e '/^[[:space:]]*primary_conninfo[[:space:]]*=/d'"));
        assert!(body.contains("-X stream -R -c fast"));
        assert!(body.contains("ARCHIVE_DIR=/var/lib/pgsql/archivedir"));
    }

    #[test]
    fn recovery_first_stage_rebuilds_on_the_destination() {
        let r = run(
            &debian(recovery_1st_stage),
            &[
                PGDATA,
                "ke2-server2",
                PGDATA,
                "5432",
                "1",
                "5432",
                "ke2-server1",
            ],
            0,
        );
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert_eq!(r.calls.len(), 1);
        assert!(r.calls[0].ends_with("postgres@ke2-server2 bash -s"));
        let payload = &r.payloads[0];
        assert!(
            payload.trim_end().ends_with(&format!(
                "remote_recover {PGDATA} ke2-server1 5432 ke2-server2"
            )),
            "{payload}"
        );
        assert!(bash_n(payload).status.success());
        // An empty PRIMARY_NODE_HOST falls back to this host's name.
        let r = run(
            &debian(recovery_1st_stage),
            &[PGDATA, "ke2-server2", PGDATA, "5432", "1", "5432", ""],
            0,
        );
        assert!(
            r.payloads[0]
                .trim_end()
                .ends_with("ke2-server1 5432 ke2-server2"),
            "{}",
            r.payloads[0]
        );
        // A failed rebuild fails the script.
        let r = run(
            &debian(recovery_1st_stage),
            &[
                PGDATA,
                "ke2-server2",
                PGDATA,
                "5432",
                "1",
                "5432",
                "ke2-server1",
            ],
            1,
        );
        assert_eq!(r.status, 1);
    }

    #[test]
    fn remote_start_starts_on_the_destination() {
        let r = run(&debian(pgpool_remote_start), &["ke2-server2", PGDATA], 0);
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert!(r.calls[0].ends_with("postgres@ke2-server2 bash -s"));
        assert!(
            r.payloads[0]
                .trim_end()
                .ends_with(&format!("remote_pg_start {PGDATA}"))
        );
        // Then it waits there for the standby to stream, on the topology's
        // port (the socket's name carries it).
        assert_eq!(r.calls.len(), 2, "{:?}", r.calls);
        assert!(r.calls[1].ends_with("postgres@ke2-server2 bash -s"));
        assert!(
            r.payloads[1]
                .trim_end()
                .ends_with("remote_wait_streaming 5432"),
            "{}",
            r.payloads[1]
        );
        assert!(r.stdout.contains("streams"), "{}", r.stdout);
        let r = run(&debian(pgpool_remote_start), &["ke2-server2", PGDATA], 1);
        assert_eq!(r.status, 1);
        let r = run(&debian(pgpool_remote_start), &[], 0);
        assert_eq!(r.status, 1);
        assert!(r.calls.is_empty());
    }

    #[test]
    fn escalation_releases_the_vip_on_the_other_hosts_only() {
        // hostname is ke2-server1; ke2-server3 "does not answer".
        let r = run(&debian(escalation_sh), &[], 255);
        assert_eq!(r.status, 0, "{}", r.stdout);
        assert_eq!(r.calls.len(), 2, "{:?}", r.calls);
        assert!(r.calls[0].ends_with("postgres@ke2-server2 bash -s"));
        assert!(r.calls[1].ends_with("postgres@ke2-server3 bash -s"));
        assert!(r.stdout.contains("skipping ke2-server1"), "{}", r.stdout);
        assert!(
            r.stdout
                .contains("WARNING: could not reach ke2-server3; ignored"),
            "{}",
            r.stdout
        );
        for payload in &r.payloads {
            assert!(
                payload
                    .trim_end()
                    .ends_with("remote_release_vip eth0 /sbin/ip /usr/bin/sudo"),
                "{payload}"
            );
            assert!(
                payload.contains("declare -- VIP=\"10.20.0.100\""),
                "{payload}"
            );
            assert!(bash_n(payload).status.success());
        }
    }

    /// A sandbox where ssh runs what it is sent right here, with the
    /// Debian PG_BIN and archive dir redirected into the sandbox, and fake
    /// PostgreSQL tools that log to `calls`. `running` marks a running
    /// server for the fake `pg_ctl status` and `pg_ctlcluster`.
    struct Sandbox {
        dir: tempfile::TempDir,
    }

    impl Sandbox {
        fn new() -> Self {
            let sb = Sandbox {
                dir: tempfile::tempdir().unwrap(),
            };
            std::fs::create_dir_all(sb.path("bin")).unwrap();
            std::fs::create_dir_all(sb.path("data/main")).unwrap();
            std::fs::write(sb.path("data/main/old_file"), "x").unwrap();
            std::fs::write(sb.path("data/main/.hidden"), "x").unwrap();
            std::fs::write(sb.path("data/keep"), "x").unwrap();
            sb.tool(
                "pg_ctl",
                r#"if [ "$3" = status ]; then [ -e "$FAKE_DIR/running" ] && exit 0; exit 3; fi
echo "pg_ctl $*" >>"$FAKE_DIR/calls"
case "${@: -1}" in start) touch "$FAKE_DIR/running" ;; stop) rm -f "$FAKE_DIR/running" ;; esac"#,
            );
            sb.tool(
                "pg_basebackup",
                r##"echo "pg_basebackup $*" >>"$FAKE_DIR/calls"
while [ "$#" -gt 0 ]; do [ "$1" = -D ] && dir="$2"; shift; done
[ -z "$(ls -A "$dir")" ] || { echo "not empty: $dir"; exit 1; }
echo 17 >"$dir/PG_VERSION"
printf "%s\n" "# Do not edit" "primary_conninfo = 'user=repl password=repl host=x port=5432'" >"$dir/postgresql.auto.conf"
touch "$dir/standby.signal""##,
            );
            sb.tool(
                "psql",
                r#"case "$*" in *pg_stat_wal_receiver*) echo streaming ;; *) echo "psql $*" >>"$FAKE_DIR/calls" ;; esac"#,
            );
            sb.tool(
                "pg_rewind",
                r#"echo "pg_rewind $*" >>"$FAKE_DIR/calls"; exit 1"#,
            );
            sb
        }

        fn path(&self, p: &str) -> std::path::PathBuf {
            self.dir.path().join(p)
        }

        fn pgdata(&self) -> String {
            self.path("data/main").to_str().unwrap().to_string()
        }

        fn tool(&self, name: &str, text: &str) {
            let path = self.path("bin").join(name);
            std::fs::write(&path, format!("#!/bin/bash\n{text}\n")).unwrap();
            Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        }

        fn run(&self, body: &str, args: &[&str]) -> (bool, String, Vec<String>) {
            let fakes = r#"
ssh() {
    local payload
    payload=$(cat)
    payload=${payload//\/usr\/lib\/postgresql\/17\/bin/$FAKE_DIR/bin}
    payload=${payload//\/var\/lib\/pgsql\/archivedir/$FAKE_DIR/archive}
    bash -c "$payload"
}
pg_ctlcluster() {
    echo "pg_ctlcluster $*" >>"$FAKE_DIR/calls"
    case "$3" in start) touch "$FAKE_DIR/running" ;; stop) rm -f "$FAKE_DIR/running" ;; esac
}
pcp_attach_node() { echo "PCPPASSFILE=$PCPPASSFILE pcp_attach_node $*" >>"$FAKE_DIR/calls"; }
hostname() { echo ke2-server1; }
export -f ssh pg_ctlcluster pcp_attach_node hostname
exec bash "$@"
"#;
            let script = self.path("script");
            std::fs::write(&script, body).unwrap();
            let out = Command::new("bash")
                .args(["-c", fakes, "fakes"])
                .arg(&script)
                .args(args)
                .env("FAKE_DIR", self.dir.path())
                .env_remove("HOME")
                .output()
                .unwrap();
            let calls = std::fs::read_to_string(self.path("calls")).unwrap_or_default();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (
                out.status.success(),
                text,
                calls.lines().map(str::to_string).collect(),
            )
        }

        /// PGDATA was emptied (dotfiles too, nothing outside it) and made a
        /// standby of ke2-server2's `primary` with application_name `app`.
        fn assert_standby_of(&self, primary: &str, app: &str) {
            assert!(!self.path("data/main/old_file").exists());
            assert!(!self.path("data/main/.hidden").exists());
            assert!(self.path("data/keep").exists());
            assert!(self.path("data/main/standby.signal").exists());
            let auto =
                std::fs::read_to_string(self.path("data/main/postgresql.auto.conf")).unwrap();
            assert_eq!(
                auto,
                format!(
                    "# Do not edit\nprimary_conninfo = 'host={primary} port=5432 user=repl \
                     application_name={app} passfile=/var/lib/postgresql/.pgpass'\n"
                )
            );
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(self.path("data/main"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    /// `recovery_1st_stage` for real (fake tools): the destination's PGDATA
    /// is emptied, filled by pg_basebackup from the primary and ends with
    /// one primary_conninfo naming the node, whatever `-R` wrote.
    #[test]
    fn recovery_first_stage_end_to_end_with_fake_tools() {
        let sb = Sandbox::new();
        let pgdata = sb.pgdata();
        let args = [
            "/primary/pgdata",
            "ke2-server2",
            &pgdata,
            "5432",
            "1",
            "5432",
            "ke2-server1",
        ];
        let (ok, out, calls) = sb.run(&debian(recovery_1st_stage), &args);
        assert!(ok, "{out}");
        assert_eq!(
            calls,
            [format!(
                "pg_basebackup -h ke2-server1 -p 5432 -U repl -w -D {pgdata} -X stream -R -c fast"
            )]
        );
        sb.assert_standby_of("ke2-server1", "ke2-server2");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sb.path("archive"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    /// `follow_primary.sh` for real (fake tools): a running standby is
    /// stopped, pg_rewind fails, so it is rebuilt from the new primary,
    /// started, and attached once it streams.
    #[test]
    fn follow_primary_end_to_end_falls_back_to_basebackup() {
        let sb = Sandbox::new();
        std::fs::write(sb.path("running"), "").unwrap();
        let pgdata = sb.pgdata();
        let args = [
            "2",
            "ke2-server3",
            "5432",
            &pgdata,
            "1",
            "ke2-server2",
            "0",
            "0",
            "5432",
            PGDATA,
        ];
        let (ok, out, calls) = sb.run(&debian(follow_primary_sh), &args);
        assert!(ok, "{out}");
        let source = "host=ke2-server2 port=5432 user=postgres dbname=postgres connect_timeout=10";
        assert_eq!(
            calls,
            [
                "pg_ctlcluster 17 main stop -m fast".to_string(),
                format!("psql -d {source} -XAtq -c CHECKPOINT"),
                format!(
                    "pg_rewind -D {pgdata} --config-file=/etc/postgresql/17/main/postgresql.conf \
                     --source-server={source}"
                ),
                format!("pg_basebackup -h ke2-server2 -p 5432 -U repl -w -D {pgdata} -X stream -R -c fast"),
                format!(
                    "pg_ctl -D {pgdata} -l /var/log/postgresql/postgresql-17-main.log -w -s \
                     -o -c config_file=\"/etc/postgresql/17/main/postgresql.conf\" start"
                ),
                "PCPPASSFILE=/var/lib/postgresql/.pcppass pcp_attach_node -w -h localhost -p 9898 -U pgpool -n 2"
                    .to_string(),
            ],
            "{out}"
        );
        sb.assert_standby_of("ke2-server2", "ke2-server3");
    }

    /// When pg_rewind succeeds, nothing is copied: the standby gets its new
    /// settings and starts.
    #[test]
    fn follow_primary_end_to_end_with_pg_rewind() {
        let sb = Sandbox::new();
        std::fs::write(sb.path("running"), "").unwrap();
        sb.tool("pg_rewind", r#"echo "pg_rewind" >>"$FAKE_DIR/calls""#);
        let pgdata = sb.pgdata();
        let args = [
            "2",
            "ke2-server3",
            "5432",
            &pgdata,
            "1",
            "ke2-server2",
            "0",
            "0",
            "5432",
            PGDATA,
        ];
        let (ok, out, calls) = sb.run(&debian(follow_primary_sh), &args);
        assert!(ok, "{out}");
        assert!(
            !calls.iter().any(|c| c.starts_with("pg_basebackup")),
            "{calls:?}"
        );
        assert_eq!(
            calls.last().unwrap(),
            "PCPPASSFILE=/var/lib/postgresql/.pcppass pcp_attach_node -w -h localhost -p 9898 -U pgpool -n 2"
        );
        assert!(sb.path("data/main/old_file").exists());
        assert!(sb.path("data/main/standby.signal").exists());
        let auto = std::fs::read_to_string(sb.path("data/main/postgresql.auto.conf")).unwrap();
        assert_eq!(
            auto,
            "primary_conninfo = 'host=ke2-server2 port=5432 user=repl application_name=ke2-server3 \
             passfile=/var/lib/postgresql/.pgpass'\n"
        );
    }
}
