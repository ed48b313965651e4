//! What the campaign shows while it runs: a bar of accepted sales and a
//! status line (indicatif) on a terminal, and the event log (faults, findings)
//! above them. Without a terminal (a test, CI) the bars stay hidden and the
//! event log goes to stderr line by line.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Ui {
    multi: MultiProgress,
    sales: ProgressBar,
    status: ProgressBar,
}

impl Ui {
    /// `show`: draw bars (when stderr is a terminal).
    pub fn new(total_sales: u64, show: bool) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let sales = multi.add(ProgressBar::new(total_sales));
        sales.set_style(
            ProgressStyle::with_template(
                "  sales [{bar:40}] {pos}/{len} accepted ({elapsed}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let status = multi.add(ProgressBar::new_spinner());
        status.set_style(
            ProgressStyle::with_template("  {spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        status.enable_steady_tick(Duration::from_millis(200));
        Self {
            multi,
            sales,
            status,
        }
    }

    /// One line of the event log.
    pub fn say(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("chaos: {line}");
        } else {
            let _ = self.multi.println(format!("  {line}"));
        }
    }

    pub fn accepted(&self, n: usize) {
        self.sales.set_position(n as u64);
    }

    /// The status line (the fault being injected).
    pub fn status(&self, msg: String) {
        self.status.set_message(msg);
    }

    /// Next to the sales bar: where the pipeline stands.
    pub fn counts(&self, msg: String) {
        self.sales.set_message(msg);
    }

    pub fn finish(&self) {
        self.sales.finish();
        self.status.finish_and_clear();
    }
}
