use std::io::Write;

use clap::Subcommand;
use jiff::Timestamp;

use crate::schedule::{MAX_DATES, Schedule};

/// `schedule …`
#[derive(Subcommand, Debug)]
#[non_exhaustive]
pub enum ScheduleCommand {
    /// Prints the next dates of a schedule, one RFC 3339 timestamp per line, in its time zone.
    Preview {
        /// The schedule, as the YAML or JSON mapping of a deployment spec, e.g.
        /// '{cron: "0 9 * * MON-FRI", timezone: Europe/Berlin}'.
        schedule: String,
        /// The first date may be this one or later (RFC 3339; default: now).
        #[arg(long)]
        start: Option<String>,
        /// No date after this one (RFC 3339).
        #[arg(long)]
        end: Option<String>,
        /// How many dates at most.
        #[arg(short = 'n', long = "count", default_value_t = 10)]
        n: usize,
    },
}

fn timestamp(flag: &str, text: &str) -> Result<Timestamp, String> {
    text.parse()
        .map_err(|e| format!("--{flag} {text:?} is not an RFC 3339 timestamp with an offset: {e}"))
}

pub(super) fn run(cmd: ScheduleCommand, out: &mut dyn Write) -> Result<(), String> {
    match cmd {
        ScheduleCommand::Preview {
            schedule,
            start,
            end,
            n,
        } => {
            let schedule = Schedule::parse(&schedule).map_err(|e| e.to_string())?;
            let start = match start {
                Some(s) => timestamp("start", &s)?,
                None => Timestamp::now(),
            };
            let end = end.map(|e| timestamp("end", &e)).transpose()?;
            let dates = schedule
                .iter_from(start)
                .take_while(|d| end.is_none_or(|e| d.timestamp() <= e))
                .take(n.min(MAX_DATES));
            for date in dates {
                writeln!(out, "{}", date.strftime("%Y-%m-%dT%H:%M:%S%:z"))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }
}
