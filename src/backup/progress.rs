//! The progress bar of `msr backup` and `msr restore`: on stderr, and only
//! when stderr is a terminal, so it never mixes into an archive on stdout
//! or into a log file.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Draws on stderr if it is a terminal, else nowhere.
    pub fn on_terminal() -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(200));
            Self { bar }
        } else {
            Self::hidden()
        }
    }

    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    /// Counting rows, out of `total`.
    pub fn rows(&self, total: u64) {
        self.bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {human_pos}/{human_len} rows ({per_sec}) {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_prefix("metadata");
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
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.reset_eta();
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
