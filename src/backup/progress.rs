//! The progress bar of `msr backup` and `msr restore`: on stderr, and only
//! when stderr is a terminal, so it never mixes into an archive on stdout
//! or into a log file.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    terminal: bool,
}

impl Progress {
    /// Draws on stderr if it is a terminal, else nowhere.
    pub fn on_terminal() -> Self {
        if std::io::stderr().is_terminal() {
            // Drawn (and ticking) once a phase gives it a style and a length.
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            Self {
                bar,
                terminal: true,
            }
        } else {
            Self::hidden()
        }
    }

    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
            terminal: false,
        }
    }

    /// Counting rows, out of `total`.
    pub fn rows(&self, total: u64) {
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {human_pos}/{human_len} rows ({rate}) {msg}",
            )
            .expect("valid template")
            .with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{}/s", HumanCount(state.per_sec() as u64));
                },
            )
            .progress_chars("=> "),
        );
        self.bar.set_prefix("metadata");
        self.show();
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.reset_eta();
    }

    /// Counting bytes of blobs, out of `total`.
    pub fn bytes(&self, total: u64) {
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta} left) {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_prefix("blobs");
        self.show();
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.reset_eta();
    }

    fn show(&self) {
        if self.terminal {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.bar.enable_steady_tick(Duration::from_millis(200));
        }
    }

    pub fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    /// What the archive holds so far, beside the bar.
    pub fn archive_size(&self, bytes: u64) {
        self.bar
            .set_message(format!("· archive {}", indicatif::BinaryBytes(bytes)));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error ends the bar too, so the message after it stands alone.
        self.bar.finish_and_clear();
    }
}
