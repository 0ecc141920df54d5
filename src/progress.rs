//! Progress reporting, on stderr. Core code reports through [`Reporter`]; the
//! CLI picks bars on a terminal, one line per state change otherwise (a
//! log, CI), and nothing with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// What long-running work tells the user while it runs. Each line is
/// shown under its `scope`: the region the work is in, or the set's name
/// for work over all of its regions (a sync, a restore).
pub trait Reporter: Send + Sync {
    /// A unit of work (a stack, a bucket) has started.
    fn started(&self, scope: &str, item: &str, what: &str);
    /// Something happened inside it (a resource event).
    fn progressed(&self, scope: &str, item: &str, message: &str);
    /// How far it has come (keys examined, copies made): sent often, shown
    /// as often as the reporter likes.
    fn counted(&self, scope: &str, item: &str, message: &str) {
        self.progressed(scope, item, message);
    }
    /// It has ended; `ok` tells how.
    fn finished(&self, scope: &str, item: &str, outcome: &str, ok: bool);
    /// A free-standing line.
    fn note(&self, message: &str);
}

/// Bars only where a person watches: a terminal, and no verbose logs, which
/// would interleave with the bars.
pub fn reporter(verbose: bool, quiet: bool) -> Box<dyn Reporter> {
    if quiet {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() && !verbose {
        Box::new(Bars::default())
    } else {
        Box::new(Lines::new(verbose))
    }
}

/// Nothing at all: `--quiet`.
struct Quiet;

impl Reporter for Quiet {
    fn started(&self, _: &str, _: &str, _: &str) {}
    fn progressed(&self, _: &str, _: &str, _: &str) {}
    fn finished(&self, _: &str, _: &str, _: &str, _: bool) {}
    fn note(&self, _: &str) {}
}

/// Plain lines for logs and CI: one per state change of a unit of work (a
/// stack starts, ends), and its events (each resource's) only with `-v`.
struct Lines {
    events: bool,
    counted: Mutex<HashMap<(String, String), Instant>>,
}

impl Lines {
    fn new(events: bool) -> Self {
        Self {
            events,
            counted: Mutex::default(),
        }
    }
}

/// A log gets a count at most this often per unit of work.
const COUNT_EVERY: Duration = Duration::from_secs(30);

impl Reporter for Lines {
    fn started(&self, scope: &str, item: &str, what: &str) {
        eprintln!("[{scope}] {item}: {what}");
    }

    fn progressed(&self, scope: &str, item: &str, message: &str) {
        if self.events {
            eprintln!("[{scope}] {item}: {message}");
        }
    }

    fn counted(&self, scope: &str, item: &str, message: &str) {
        let now = Instant::now();
        let mut counted = self.counted.lock().expect("no panic holds the lock");
        let last = counted.entry((scope.to_owned(), item.to_owned()));
        let due = match &last {
            std::collections::hash_map::Entry::Occupied(at) => {
                self.events || now.duration_since(*at.get()) >= COUNT_EVERY
            }
            std::collections::hash_map::Entry::Vacant(_) => true,
        };
        if due {
            last.insert_entry(now);
            eprintln!("[{scope}] {item}: {message}");
        }
    }

    fn finished(&self, scope: &str, item: &str, outcome: &str, ok: bool) {
        let mark = if ok { "done" } else { "FAILED" };
        eprintln!("[{scope}] {item}: {mark}: {outcome}");
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}

/// A spinner per unit of work under one [`MultiProgress`].
#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl Reporter for Bars {
    fn started(&self, scope: &str, item: &str, what: &str) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}")
                .expect("the template is valid"),
        );
        bar.set_prefix(format!("[{scope}] {item}"));
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars
            .lock()
            .expect("no panic holds the lock")
            .insert((scope.to_owned(), item.to_owned()), bar);
    }

    fn progressed(&self, scope: &str, item: &str, message: &str) {
        if let Some(bar) = self.bar(scope, item) {
            bar.set_message(message.to_owned());
        }
    }

    fn finished(&self, scope: &str, item: &str, outcome: &str, ok: bool) {
        if let Some(bar) = self.bar(scope, item) {
            let mark = if ok { "✔" } else { "✘" };
            bar.finish_with_message(format!("{mark} {outcome}"));
        }
    }

    fn note(&self, message: &str) {
        let _ = self.multi.println(message);
    }
}

impl Bars {
    fn bar(&self, scope: &str, item: &str) -> Option<ProgressBar> {
        self.bars
            .lock()
            .expect("no panic holds the lock")
            .get(&(scope.to_owned(), item.to_owned()))
            .cloned()
    }
}
