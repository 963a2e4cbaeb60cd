//! How commands print: tables sized to their content and the terminal, JSON for machines,
//! colour only on a terminal without `NO_COLOR`; and the error that sets the exit status.

use std::fmt::Display;
use std::io::Write;

use jiff::Timestamp;
use serde_json::Value;

use crate::state::StateType;

/// Why a command failed, and so its exit status: 2 for bad input, 1 for everything else.
#[derive(Debug)]
pub(super) enum Failure {
    /// The arguments, a file or a name given are wrong.
    Input(String),
    /// The work could not be done (the store failed, a run failed).
    Runtime(String),
}

impl Failure {
    pub(super) fn code(&self) -> u8 {
        match self {
            Failure::Input(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }

    pub(super) fn message(&self) -> &str {
        match self {
            Failure::Input(m) | Failure::Runtime(m) => m,
        }
    }
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        match e {
            E::UnknownFlow { .. }
            | E::InvalidParameters { .. }
            | E::Schedule(_)
            | E::Deployment(_)
            | E::NotFound { .. }
            | E::Setting { .. } => Failure::Input(e.to_string()),
            other => Failure::Runtime(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Runtime(format!("cannot write the output: {e}"))
    }
}

pub(super) type CliResult<T = ()> = Result<T, Failure>;

/// Where a command writes, and how.
pub(super) struct Out<'a> {
    pub(super) out: &'a mut dyn Write,
    pub(super) err: &'a mut dyn Write,
    /// The name the program goes by, for messages and completion scripts.
    pub(super) program: String,
    /// Colour escapes in tables (a terminal, no `NO_COLOR`).
    pub(super) colour: bool,
    /// Terminal width for tables, when known.
    pub(super) width: Option<usize>,
}

impl Out<'_> {
    /// One line on standard output.
    pub(super) fn line(&mut self, text: impl Display) -> CliResult {
        writeln!(self.out, "{text}")?;
        Ok(())
    }

    /// One line on standard error (progress and notes that are not the command's output).
    pub(super) fn note(&mut self, text: impl Display) -> CliResult {
        writeln!(self.err, "{text}")?;
        Ok(())
    }

    /// `value` as pretty JSON on standard output.
    pub(super) fn json(&mut self, value: &Value) -> CliResult {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::Runtime(format!("cannot write JSON: {e}")))?;
        self.line(text)
    }

    /// A table with a header row; the widest column is cut to fit the terminal.
    pub(super) fn table(&mut self, header: &[&str], rows: &[Vec<Cell>]) -> CliResult {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.text.chars().count());
            }
        }
        if let Some(limit) = self.width {
            let gaps = 2 * widths.len().saturating_sub(1);
            while widths.iter().sum::<usize>() + gaps > limit {
                let Some((i, &w)) = widths.iter().enumerate().max_by_key(|(_, w)| **w) else {
                    break;
                };
                if w <= 8 {
                    break;
                }
                widths[i] = w - 1;
            }
        }
        let head: Vec<Cell> = header.iter().map(|h| Cell::plain(*h)).collect();
        self.row(&widths, &head, true)?;
        for row in rows {
            self.row(&widths, row, false)?;
        }
        Ok(())
    }

    fn row(&mut self, widths: &[usize], cells: &[Cell], bold: bool) -> CliResult {
        let mut line = String::new();
        for (i, (cell, &w)) in cells.iter().zip(widths).enumerate() {
            let mut text: String = cell.text.chars().take(w).collect();
            if text.chars().count() < cell.text.chars().count() && w > 0 {
                text.pop();
                text.push('…');
            }
            let pad = w - text.chars().count();
            let last = i + 1 == cells.len();
            let style = if bold { Some("1") } else { cell.colour };
            match (self.colour, style) {
                (true, Some(code)) => line.push_str(&format!("\x1b[{code}m{text}\x1b[0m")),
                _ => line.push_str(&text),
            }
            if !last {
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        self.line(line.trim_end())
    }
}

/// A table cell: its text and, on a terminal, its colour (an SGR code).
pub(super) struct Cell {
    pub(super) text: String,
    pub(super) colour: Option<&'static str>,
}

impl Cell {
    pub(super) fn plain(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            colour: None,
        }
    }

    /// A run's current state (empty for none).
    pub(super) fn run_state(state: Option<&crate::State>) -> Self {
        Self::state(
            state.map_or("", crate::State::name),
            state.map(crate::State::state_type),
        )
    }

    /// A state's name, coloured by its type as Prefect's UI does.
    pub(super) fn state(name: &str, kind: Option<StateType>) -> Self {
        let colour = kind.map(|k| match k {
            StateType::Completed => "32",
            StateType::Failed | StateType::Crashed => "31",
            StateType::Running | StateType::Pending => "34",
            StateType::Cancelled | StateType::Cancelling | StateType::Paused => "90",
            StateType::Scheduled => "33",
        });
        Cell {
            text: name.to_owned(),
            colour,
        }
    }
}

/// A time for a table: UTC, to the second; empty for none.
pub(super) fn when(at: Option<Timestamp>) -> String {
    at.map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A duration between two times, in seconds with one decimal; empty when either is missing.
pub(super) fn took(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.1}s", s.duration_until(e).as_secs_f64()),
        _ => String::new(),
    }
}

/// A time for JSON: RFC 3339, or null.
pub(super) fn json_time(at: Option<Timestamp>) -> Value {
    at.map_or(Value::Null, |t| Value::String(t.to_string()))
}

/// Whether tables may be coloured on standard output.
pub(super) fn colour_allowed() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The terminal's width from `COLUMNS` (shells export it) when standard output is one.
pub(super) fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or(Some(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(colour: bool, width: Option<usize>, rows: &[Vec<Cell>]) -> String {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut o = Out {
            out: &mut out,
            err: &mut err,
            program: "test".into(),
            colour,
            width,
        };
        o.table(&["NAME", "STATE"], rows).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn rows() -> Vec<Vec<Cell>> {
        vec![vec![
            Cell::plain("a-rather-long-run-name-indeed"),
            Cell::state("Failed", Some(StateType::Failed)),
        ]]
    }

    #[test]
    fn tables_align_columns_and_colour_only_when_asked() {
        assert_eq!(
            render(false, None, &rows()),
            "NAME                           STATE\na-rather-long-run-name-indeed  Failed\n"
        );
        let coloured = render(true, None, &rows());
        assert!(coloured.contains("\x1b[31mFailed\x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[1mNAME\x1b[0m"), "{coloured:?}");
    }

    #[test]
    fn the_widest_column_is_cut_to_the_terminal() {
        let text = render(false, Some(24), &rows());
        for line in text.lines() {
            assert!(line.chars().count() <= 24, "{line:?}");
        }
        assert!(text.contains("a-rather-long-r…  Failed"), "{text}");
    }
}
