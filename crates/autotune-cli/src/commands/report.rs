//! `autotune report DIR`: draws a run directory as one HTML page (and PNGs).

use anyhow::Result;

use crate::args::ReportArgs;

pub fn run(a: ReportArgs) -> Result<()> {
    let w = autotune_report::write_report(&a.dir, a.out.as_deref(), a.png.as_deref())?;
    for p in &w.problems {
        eprintln!("warning: {p}");
    }
    println!("wrote {}", w.html.display());
    for p in &w.pngs {
        println!("wrote {}", p.display());
    }
    Ok(())
}
