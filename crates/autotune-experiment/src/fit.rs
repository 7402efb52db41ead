//! Least-squares fits for the scaling of demonstrations against log(1/eps) and 1/eps.

use serde::{Deserialize, Serialize};

/// `y = intercept + slope * x`, with its coefficient of determination.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    pub intercept: f64,
    pub slope: f64,
    pub r2: f64,
}

/// Ordinary least squares; `None` with fewer than two distinct `x`.
pub fn fit_linear(points: &[(f64, f64)]) -> Option<LinearFit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= f64::EPSILON * (1.0 + mx.abs()) {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let r2 = if syy > 0.0 { 1.0 - sse / syy } else { 1.0 };
    Some(LinearFit {
        intercept,
        slope,
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_line_is_recovered() {
        let f = fit_linear(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-12);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert!(fit_linear(&[(1.0, 1.0)]).is_none());
        assert!(fit_linear(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }

    proptest! {
        #[test]
        fn r2_is_at_most_one(pts in proptest::collection::vec((0.0f64..100.0, 0.0f64..100.0), 2..20)) {
            if let Some(f) = fit_linear(&pts) {
                prop_assert!(f.r2 <= 1.0 + 1e-9);
            }
        }
    }
}
