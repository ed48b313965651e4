//! condition-filter's settings: the shared connection and ops arguments plus
//! its two tunables, each from the environment with a default (`--help`
//! lists them). Out-of-range values stop the service at start-up.

use clap::Parser;
use salesync_core::config::{CommonArgs, OpsArgs};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "condition-filter",
    about = "Decides which sale goes to which integration and creates its delivery"
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub ops: OpsArgs,

    /// Sale events taken from the queue at once; also the largest batch
    /// decided in one database transaction.
    #[arg(long, env = "PREFETCH", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Outbox rows the relay publishes per round trip to the broker.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub outbox_batch: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("condition-filter").chain(args.iter().copied()))
    }

    #[test]
    fn tunables_parse_and_refuse_nonsense() {
        // (arguments, parsed (prefetch, outbox batch) or None = refused)
        type Case<'a> = (&'a [&'a str], Option<(u16, i64)>);
        let cases: [Case; 6] = [
            (
                &["--prefetch", "32", "--outbox-batch", "100"],
                Some((32, 100)),
            ),
            (
                &["--prefetch", "65535", "--outbox-batch", "10000"],
                Some((65535, 10_000)),
            ),
            (&["--prefetch", "0"], None),
            (&["--prefetch", "70000"], None),
            (&["--outbox-batch", "0"], None),
            (&["--outbox-batch", "many"], None),
        ];
        for (args, want) in cases {
            let got = parse(args).ok().map(|c| (c.prefetch, c.outbox_batch));
            assert_eq!(got, want, "{args:?}");
        }
    }
}
