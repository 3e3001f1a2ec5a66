//! What a person sees while ke2lab works, and where the detail goes.
//!
//! - One line per phase. On a terminal it is a spinner while the phase runs
//!   (with bytes for image builds and loads) and turns into `✓ phase  time`
//!   when it ends; elsewhere (a pipe, a file, `NO_COLOR`) only the finished
//!   line is printed, and never an ANSI sequence.
//! - Warnings once each, wrapped to the terminal's width.
//! - The per-host detail (every change a step applies, every harness event)
//!   goes to the run's `install.log`; to the console only with `-v`.
//! - `-q`: errors and the final summary only.
//!
//! Phases are `tracing` spans named [`PHASE_SPAN`]: the core's
//! `steps::run` opens one per step, the harness one per phase of its own
//! ([`phase_span`]), so the core knows nothing of terminals and a phase
//! shows while it runs, not only once it is done.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The name of a phase's span (the core's `steps::run` uses it too).
pub const PHASE_SPAN: &str = "phase";

/// How much the console shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors and the summary.
    Quiet,
    /// Phase lines and warnings.
    Normal,
    /// Also the per-host detail.
    Verbose,
}

/// The console's mode, decided once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// Spinners and redrawn lines: only when both stdout and stderr are
    /// terminals, `NO_COLOR` is unset and `TERM` is not `dumb`.
    pub live: bool,
    pub verbosity: Verbosity,
    /// Where warnings wrap.
    pub width: usize,
}

impl Mode {
    /// The mode for this process's terminals and environment.
    pub fn detect(verbosity: Verbosity) -> Mode {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let live = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Mode::of(live, no_color || dumb, verbosity, terminal_width())
    }

    /// The decision itself, from its inputs (unit-tested).
    pub fn of(terminals: bool, plain: bool, verbosity: Verbosity, width: Option<usize>) -> Mode {
        let live = terminals && !plain;
        Mode {
            live,
            verbosity,
            // One column short of the terminal: a line as wide as it wraps.
            width: width
                .filter(|_| live)
                .map(|w| w.saturating_sub(1))
                .unwrap_or(100)
                .clamp(40, 160),
        }
    }
}

fn terminal_width() -> Option<usize> {
    ::console::Term::stderr()
        .size_checked()
        .map(|(_, cols)| cols as usize)
}

struct Console {
    mode: Mode,
    multi: MultiProgress,
    warned: Mutex<HashSet<String>>,
    /// The phases running now, innermost last: [`activity`] and [`bytes`]
    /// speak of the last one.
    running: Mutex<Vec<(u64, ProgressBar)>>,
    next: std::sync::atomic::AtomicU64,
}

static CONSOLE: OnceLock<Console> = OnceLock::new();
static LOG: OnceLock<LogFile> = OnceLock::new();

/// Points the installed console's detail log at `path` (see
/// [`LogFile::open`]); without a console, nothing to do.
pub fn open_log(path: &Path) -> std::io::Result<()> {
    match LOG.get() {
        Some(l) => l.open(path),
        None => Ok(()),
    }
}

/// Installs the console for this process (once; later calls are ignored)
/// and returns the log file handle that [`LogFile::open`] points at the
/// run's `install.log`.
pub fn install(mode: Mode, detail: Level, file_filter: tracing_subscriber::EnvFilter) -> LogFile {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let multi = MultiProgress::with_draw_target(if mode.live {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let _ = CONSOLE.set(Console {
        mode,
        multi,
        warned: Mutex::new(HashSet::new()),
        running: Mutex::new(Vec::new()),
        next: std::sync::atomic::AtomicU64::new(0),
    });
    let log = LOG.get_or_init(LogFile::default).clone();
    let file = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .with_writer(log.clone())
        .with_filter(file_filter);
    let console = ConsoleLayer.with_filter(tracing_subscriber::filter::filter_fn(
        move |m: &Metadata<'_>| console_wants(m, detail),
    ));
    let _ = tracing_subscriber::registry()
        .with(file)
        .with(console)
        .try_init();
    log
}

/// What the console layer is shown: phase spans, warnings and errors of
/// ke2lab's own crates, and with `-v` their detail down to `detail`.
fn console_wants(m: &Metadata<'_>, detail: Level) -> bool {
    let ours = m.target().starts_with("ke2lab");
    if m.is_span() {
        return ours && m.name() == PHASE_SPAN;
    }
    ours && *m.level() <= detail.max(Level::WARN)
}

fn console() -> Option<&'static Console> {
    CONSOLE.get()
}

/// The console's verbosity (`Normal` when none is installed).
pub fn verbosity() -> Verbosity {
    console().map_or(Verbosity::Normal, |c| c.mode.verbosity)
}

/// A warning, printed once per process however often it is raised, and
/// wrapped; nothing with `-q`.
pub fn warn(text: &str) {
    match console() {
        Some(c) => c.warn(text),
        None => eprintln!("warning: {text}"),
    }
}

/// A line on stderr that does not tear a spinner.
pub fn note(line: &str) {
    match console() {
        Some(c) if c.mode.verbosity == Verbosity::Quiet => {}
        Some(c) => c.println(line),
        None => eprintln!("{line}"),
    }
}

/// What the running phase is doing now (a spinner's suffix; nothing when
/// the console is not live).
pub fn activity(text: &str) {
    if let Some(bar) = current() {
        bar.set_message(text.to_string());
    }
}

/// Bytes moved so far by the running phase, of `total` when known.
pub fn bytes(done: u64, total: Option<u64>) {
    if let Some(bar) = current() {
        bar.set_message(match total {
            Some(t) => format!("{} / {}", HumanBytes(done), HumanBytes(t)),
            None => format!("{}", HumanBytes(done)),
        });
    }
}

/// A reader that adds what it reads to a shared count: the bytes of an
/// upload, for [`bytes`].
pub struct Counted<R> {
    inner: R,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl<R> Counted<R> {
    pub fn new(inner: R, count: Arc<std::sync::atomic::AtomicU64>) -> Self {
        Counted { inner, count }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.count
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        r
    }
}

fn current() -> Option<ProgressBar> {
    let c = console()?;
    c.running.lock().unwrap().last().map(|(_, b)| b.clone())
}

/// A span for one harness phase: shown from now on, and finished when the
/// span closes, `✓` with `detail` if [`done`] recorded it, `✗` otherwise.
pub fn phase_span(name: &str) -> tracing::Span {
    tracing::info_span!(
        PHASE_SPAN,
        phase = name,
        changes = tracing::field::Empty,
        detail = tracing::field::Empty
    )
}

/// Marks a harness phase's span as done with what it did.
pub fn done(span: &tracing::Span, detail: &str) {
    span.record("detail", detail);
}

impl Console {
    fn warn(&self, text: &str) {
        if self.mode.verbosity == Verbosity::Quiet {
            return;
        }
        if !self.warned.lock().unwrap().insert(text.to_string()) {
            return;
        }
        self.println(&wrap("warning: ", text, self.mode.width));
    }

    fn println(&self, line: &str) {
        if self.mode.live {
            // The spinners are cleared, the line printed whole (with its
            // newline), and the spinners drawn again below it.
            self.multi.suspend(|| eprintln!("{line}"));
        } else {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{line}");
        }
    }

    fn start(&self, name: &str) -> Running {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bar = (self.mode.live && self.mode.verbosity != Verbosity::Quiet).then(|| {
            let b = self.multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<16} {elapsed:>4} {wide_msg}")
                    .expect("a valid template"),
            );
            b.set_prefix(name.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        if let Some(b) = &bar {
            self.running.lock().unwrap().push((id, b.clone()));
        }
        Running {
            id,
            name: name.to_string(),
            start: Instant::now(),
            bar,
            fields: PhaseFields::default(),
        }
    }

    fn finish(&self, r: Running) {
        self.running.lock().unwrap().retain(|(id, _)| *id != r.id);
        let line = phase_line(
            &r.name,
            r.fields.elapsed(r.start.elapsed()),
            &r.fields,
            self.mode.width,
        );
        if let Some(b) = r.bar {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        if self.mode.verbosity != Verbosity::Quiet {
            self.println(&line);
        }
    }
}

/// A phase shown on the console.
struct Running {
    id: u64,
    name: String,
    start: Instant,
    bar: Option<ProgressBar>,
    fields: PhaseFields,
}

/// What a phase's span recorded.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct PhaseFields {
    pub phase: Option<String>,
    pub changes: Option<u64>,
    pub detail: Option<String>,
    /// The phase's own time, when it was recorded.
    pub elapsed_ms: Option<u64>,
}

impl PhaseFields {
    /// The phase's time: its recorded `elapsed_ms`, else how long its span
    /// lived (`lived`). A phase reported after the fact (the core's
    /// surveyed steps, run side by side) says its own time.
    pub fn elapsed(&self, lived: Duration) -> Duration {
        self.elapsed_ms.map_or(lived, Duration::from_millis)
    }
}

impl Visit for PhaseFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "phase" => self.phase = Some(value.to_string()),
            "detail" => self.detail = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "changes" => self.changes = Some(value),
            "elapsed_ms" => self.elapsed_ms = Some(value),
            _ => {}
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// A finished phase as one line: `✓ name  time  what` when the phase
/// recorded its outcome (changes or detail), `✗ name  time  failed`
/// otherwise; cut to `width` characters.
pub fn phase_line(name: &str, elapsed: Duration, f: &PhaseFields, width: usize) -> String {
    let secs = format!("{:.1}s", elapsed.as_secs_f64());
    let (mark, what) = match (&f.changes, &f.detail) {
        (Some(n), _) => ("✓", format!("{n} change(s)")),
        (None, Some(d)) => ("✓", d.clone()),
        (None, None) => ("✗", "failed".to_string()),
    };
    cut(&format!("{mark} {name:<16} {secs:>7}  {what}"), width)
}

fn cut(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut s: String = line.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// `text` after `lead`, wrapped at word boundaries to `width` with the
/// continuation lines indented under the text; a word longer than a line
/// (a path, a URL) stays whole on its own line.
pub fn wrap(lead: &str, text: &str, width: usize) -> String {
    let indent = " ".repeat(lead.chars().count());
    let mut out = String::new();
    let mut line = lead.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if !empty && !fits {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out
}

/// The layer that draws phases and prints warnings and, with `-v`, detail.
struct ConsoleLayer;

#[derive(Default)]
struct EventFields {
    message: String,
    host: Option<String>,
    step: Option<String>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "host" => self.host = Some(value.to_string()),
            "step" => self.step = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S> Layer<S> for ConsoleLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(c) = console() else { return };
        let mut f = PhaseFields::default();
        attrs.record(&mut f);
        let mut r = c.start(f.phase.as_deref().unwrap_or("?"));
        r.fields = f;
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Arc::new(Mutex::new(Some(r))));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(r) = span.extensions().get::<Arc<Mutex<Option<Running>>>>()
            && let Some(r) = r.lock().unwrap().as_mut()
        {
            values.record(&mut r.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(c) = console() else { return };
        let mut f = EventFields::default();
        event.record(&mut f);
        let level = *event.metadata().level();
        if level <= Level::WARN {
            c.warn(&f.message);
        } else if c.mode.verbosity == Verbosity::Verbose {
            let who = match (&f.step, &f.host) {
                (Some(s), Some(h)) => format!("[{s} {h}] "),
                (Some(s), None) => format!("[{s}] "),
                (None, Some(h)) => format!("[{h}] "),
                (None, None) => String::new(),
            };
            c.println(&format!("  {who}{}", f.message));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(c) = console() else { return };
        let Some(span) = ctx.span(&id) else { return };
        let r = span
            .extensions()
            .get::<Arc<Mutex<Option<Running>>>>()
            .and_then(|r| r.lock().unwrap().take());
        if let Some(r) = r {
            c.finish(r);
        }
    }
}

/// The run's `install.log`: what the tracing file layer writes, buffered
/// until the run's directory is known ([`LogFile::open`]); everything
/// before that is written first. Mode 0600: hosts' names and commands are
/// no one else's business (secrets never reach it: `Cmd` shows secret
/// arguments as `***`).
#[derive(Clone, Default)]
pub struct LogFile(Arc<Mutex<Sink>>);

#[derive(Default)]
enum Sink {
    #[default]
    Buffer,
    Open(std::fs::File),
}

/// What is kept before the file is open; beyond it lines are dropped (a
/// command that never opens a run's log must not grow without bound).
const BUFFER_CAP: usize = 4 << 20;

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

impl LogFile {
    /// Appends from now on to `path` (made 0600), after what was buffered.
    pub fn open(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let buffered = std::mem::take(&mut *BUFFER.lock().unwrap());
        f.write_all(&buffered)?;
        *self.0.lock().unwrap() = Sink::Open(f);
        Ok(())
    }
}

/// One write of the file layer.
pub struct LogWriter(LogFile);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *self.0.0.lock().unwrap() {
            Sink::Open(f) => f.write(buf),
            Sink::Buffer => {
                let mut b = BUFFER.lock().unwrap();
                if b.len() + buf.len() <= BUFFER_CAP {
                    b.extend_from_slice(buf);
                }
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *self.0.0.lock().unwrap() {
            Sink::Open(f) => f.flush(),
            Sink::Buffer => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_only_on_terminals_without_no_color() {
        assert!(Mode::of(true, false, Verbosity::Normal, Some(120)).live);
        assert!(!Mode::of(false, false, Verbosity::Normal, Some(120)).live);
        assert!(!Mode::of(true, true, Verbosity::Normal, Some(120)).live);
        // Not live: a fixed width, whatever COLUMNS says.
        assert_eq!(
            Mode::of(false, false, Verbosity::Normal, Some(60)).width,
            100
        );
        assert_eq!(Mode::of(true, false, Verbosity::Normal, Some(10)).width, 40);
    }

    #[tokio::test]
    async fn counted_reads_add_up() {
        use tokio::io::AsyncReadExt;
        let count = Arc::new(std::sync::atomic::AtomicU64::new(5));
        let mut r = Counted::new(&b"0123456789"[..], count.clone());
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"0123456789");
        assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 15);
    }

    #[test]
    fn a_recorded_time_is_the_phase_s_own() {
        let lived = Duration::from_secs(4);
        assert_eq!(PhaseFields::default().elapsed(lived), lived);
        let surveyed = PhaseFields {
            changes: Some(0),
            elapsed_ms: Some(1250),
            ..Default::default()
        };
        assert_eq!(surveyed.elapsed(lived), Duration::from_millis(1250));
    }

    #[test]
    fn phase_lines() {
        let done = PhaseFields {
            changes: Some(3),
            ..Default::default()
        };
        assert_eq!(
            phase_line("postgres", Duration::from_millis(3210), &done, 100),
            "✓ postgres            3.2s  3 change(s)"
        );
        let detail = PhaseFields {
            detail: Some("cached `ke2lab/host:1`".into()),
            ..Default::default()
        };
        assert_eq!(
            phase_line("image", Duration::from_millis(40), &detail, 100),
            "✓ image               0.0s  cached `ke2lab/host:1`"
        );
        assert_eq!(
            phase_line(
                "recovery",
                Duration::from_secs(12),
                &PhaseFields::default(),
                100
            ),
            "✗ recovery           12.0s  failed"
        );
        let long = PhaseFields {
            detail: Some("x".repeat(300)),
            ..Default::default()
        };
        let l = phase_line("boot", Duration::ZERO, &long, 60);
        assert_eq!(l.chars().count(), 60);
        assert!(l.ends_with('…'));
    }

    #[test]
    fn warnings_wrap_under_their_text() {
        let text = "the data-path port 4789 meets a vmxnet3 NIC on `ke2-server1`; \
                    see /a/very/long/path/that/cannot/be/broken/anywhere/at/all";
        let w = wrap("warning: ", text, 40);
        for l in w.lines() {
            assert!(
                l.chars().count() <= 40 || !l.trim().contains(' '),
                "line too long: {l:?}"
            );
        }
        let lines: Vec<&str> = w.lines().collect();
        assert!(lines[0].starts_with("warning: the"));
        assert!(lines[1..].iter().all(|l| l.starts_with("         ")));
        // Every word kept, in order.
        let words: Vec<&str> = w.split_whitespace().skip(1).collect();
        assert_eq!(
            words.join(" "),
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert_eq!(wrap("warning: ", "short", 40), "warning: short");
    }
}
