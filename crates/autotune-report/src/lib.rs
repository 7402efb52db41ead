//! `autotune report`: a run directory drawn as one self-contained HTML page.
//!
//! The page needs no network: its plots are inline SVG (text laid out with an embedded
//! font), its style is inline. It shows held-out error against teacher demonstrations (and
//! against rollouts for RL) with the spread over seeds and the fitted scaling, the rank
//! distribution of the filter's candidates per phase, the filter's acceptance rate with the
//! stop certificate, the bill of every ledger cost against the uniform baseline, and the
//! configuration with its provenance. Each plot can also be exported as PNG.
//!
//! Damaged input does not stop the report: every unreadable file or line is listed (file,
//! line, what is wrong) at the top of the page and on stderr, and what can be drawn is drawn.
//!
//! ```
//! use autotune_report::RunData;
//!
//! // A directory that holds no run is an error that names what is missing.
//! let e = RunData::load(std::path::Path::new("no-such-run")).unwrap_err();
//! assert!(e.to_string().contains("no-such-run"));
//! ```

mod html;
mod load;
mod plots;

use std::path::{Path, PathBuf};

pub use html::render_html;
pub use load::{Problem, RunData};
pub use plots::{
    draw, png, rank_color, strategy_color, svg, Curve, FigureKind, Figures, PhaseSeries,
    ScalingFit, XAxis,
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0} is not a run directory (expected a directory written by `autotune run`, `compare` or `demo`)")]
    NotARunDir(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Draw(String),
}

/// What [`write_report`] wrote, and what it could not read.
#[derive(Debug)]
pub struct Written {
    pub html: PathBuf,
    pub pngs: Vec<PathBuf>,
    pub problems: Vec<Problem>,
}

/// Reads the run directory `dir` and writes its report to `out` (default
/// `dir/report.html`), and each plot as PNG into `png_dir` if given.
pub fn write_report(
    dir: &Path,
    out: Option<&Path>,
    png_dir: Option<&Path>,
) -> Result<Written, ReportError> {
    let data = RunData::load(dir)?;
    let html_path = out.map_or_else(
        || dir.join(autotune_experiment::REPORT_HTML),
        Path::to_path_buf,
    );
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReportError::Io { path, source }
    };
    if let Some(parent) = html_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&html_path, render_html(&data)).map_err(io(&html_path))?;
    let mut pngs = Vec::new();
    if let Some(pd) = png_dir {
        std::fs::create_dir_all(pd).map_err(io(pd))?;
        let figs = Figures::new(&data);
        for kind in FigureKind::ALL.into_iter().filter(|k| k.available(&figs)) {
            let path = pd.join(format!("{}.png", kind.id()));
            png(kind, &figs, &path)
                .map_err(|e| ReportError::Draw(format!("{}: {e}", path.display())))?;
            pngs.push(path);
        }
    }
    Ok(Written {
        html: html_path,
        pngs,
        problems: data.problems,
    })
}
