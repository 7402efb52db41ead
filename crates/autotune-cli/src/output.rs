//! What the commands print: the comparison table and the report of a run directory.

use std::path::Path;

use autotune_experiment::{comparison_table, CompareReport, RATIO_COLUMN, REACHED_COLUMN};

/// Draws the report of `dir`; a failure to draw is a warning, the results are already safe.
pub fn write_report(dir: &Path) {
    match autotune_report::write_report(dir, None, None) {
        Ok(w) => {
            for p in &w.problems {
                eprintln!("warning: {p}");
            }
            println!("report: {}", w.html.display());
        }
        Err(e) => eprintln!("warning: no report drawn: {e}"),
    }
}

/// The comparison table, coloured when stdout is a terminal that takes colours (and
/// `NO_COLOR` is unset), plain otherwise.
pub fn print_table(report: &CompareReport) {
    let t = comparison_table(report);
    if !console::colors_enabled() {
        print!("{}", t.render(&|_, _, cell| cell));
        return;
    }
    let paint = |row: Option<usize>, col: usize, cell: String| -> String {
        let style = match (row, col) {
            (None, _) => console::Style::new().bold(),
            (Some(_), 0) => console::Style::new().cyan(),
            (Some(_), RATIO_COLUMN) if cell.ends_with("more") => console::Style::new().red(),
            (Some(_), RATIO_COLUMN) => console::Style::new().green().bold(),
            (Some(r), REACHED_COLUMN) if !t.all_reached[r] => console::Style::new().red().bold(),
            _ => console::Style::new(),
        };
        style.apply_to(cell).to_string()
    };
    let text = t.render(&paint);
    let mut lines = text.lines();
    if let Some(title) = lines.next() {
        println!("{}", console::style(title).dim());
    }
    for l in lines {
        println!("{l}");
    }
}
