//! Weight functions of the mask (spec, "Weight functions").

/// `ln C(n, k)`, or `None` when `k` is out of `0..=n`.
fn ln_choose(n: i64, k: i64) -> Option<f64> {
    if k < 0 || k > n || n < 0 {
        return None;
    }
    let k = k.min(n - k);
    Some(
        (1..=k)
            .map(|j| ((n - k + j) as f64).ln() - (j as f64).ln())
            .sum(),
    )
}

/// Boost-by-majority weight `w_i(r)` for `phases` = K (odd), phase `i` (0-based), rank `r`
/// (members of `h_0..h_{i-1}` that are right) and edge `gamma`:
///
/// `w_i(r) = C(K-i-1, floor(K/2)-r) (1/2+gamma)^(floor(K/2)-r) (1/2-gamma)^(ceil(K/2)-i-1+r)`,
/// the probability that a prompt ends exactly at the majority boundary when each later member is
/// right with probability `1/2+gamma`; zero when the binomial is out of range (already safe, or
/// already lost).
pub fn bbm_weight(phases: usize, i: usize, r: usize, gamma: f64) -> f64 {
    let (k, i, r) = (phases as i64, i as i64, r as i64);
    if i >= k {
        return 0.0;
    }
    let n = k - i - 1;
    let s = k / 2 - r;
    match ln_choose(n, s) {
        None => 0.0,
        Some(lc) => {
            let t = (k + 1) / 2 - i - 1 + r;
            debug_assert_eq!(s + t, n);
            (lc + s as f64 * (0.5 + gamma).ln() + t as f64 * (0.5 - gamma).ln()).exp()
        }
    }
}

/// `max_r w_i(r)` over the ranks possible in phase `i` (`0..=i`).
pub fn bbm_max_weight(phases: usize, i: usize, gamma: f64) -> f64 {
    (0..=i)
        .map(|r| bbm_weight(phases, i, r, gamma))
        .fold(0.0, f64::max)
}

/// Number of phases K for boost-by-majority to reach `eps` with edge `gamma`: the smallest odd
/// K with `exp(-2 gamma^2 K) <= eps`.
pub fn bbm_phases(eps: f64, gamma: f64) -> usize {
    let k = ((1.0 / eps).ln() / (2.0 * gamma * gamma)).ceil().max(1.0) as usize;
    if k.is_multiple_of(2) {
        k + 1
    } else {
        k
    }
}

/// FilterBoost weight `1 / (1 + exp(F))` of the margin `F` (maximum 1).
pub fn filterboost_weight(margin: f64) -> f64 {
    1.0 / (1.0 + margin.exp())
}

/// MadaBoost weight `min(1, exp(-F))` (maximum 1).
pub fn madaboost_weight(margin: f64) -> f64 {
    (-margin).exp().min(1.0)
}

/// Vote weight `a = 1/2 ln((1/2+g)/(1/2-g))` of a member with edge `g` in `(0, 1/2)`.
pub fn member_alpha(edge: f64) -> f64 {
    0.5 * ((0.5 + edge) / (0.5 - edge)).ln()
}

/// Edge estimated from `errors` out of `n` filtered prompts, smoothed (add one half error and
/// one prompt) so that a perfect member gets a finite vote weight.
pub fn smoothed_edge(errors: usize, n: usize) -> f64 {
    0.5 - (errors as f64 + 0.5) / (n as f64 + 1.0)
}

/// Learnability weight `p(1-p)`, normalised by its maximum `1/4`.
pub fn learnability_weight(pass_rate: f64) -> f64 {
    4.0 * pass_rate * (1.0 - pass_rate)
}

/// DAPO's dynamic-sampling filter: keep prompts whose pass rate is strictly between 0 and 1.
pub fn zero_variance_weight(passes: usize, k: usize) -> f64 {
    if passes > 0 && passes < k {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Hand-computed oracle from the spec: K = 3.
    #[test]
    fn bbm_k3_matches_the_spec_example() {
        let g = 0.25;
        // Phase 0: only rank 0 exists: C(2,1) (3/4)^1 (1/4)^1 = 3/8.
        assert!(close(bbm_weight(3, 0, 0, g), 2.0 * 0.75 * 0.25));
        // Phase 1: r=0 -> 1/2+gamma, r=1 -> 1/2-gamma.
        assert!(close(bbm_weight(3, 1, 0, g), 0.75));
        assert!(close(bbm_weight(3, 1, 1, g), 0.25));
        // Phase 2: weight 1 to r=1 only.
        assert!(close(bbm_weight(3, 2, 1, g), 1.0));
        assert_eq!(bbm_weight(3, 2, 0, g), 0.0);
        assert_eq!(bbm_weight(3, 2, 2, g), 0.0);
    }

    #[test]
    fn bbm_phases_is_odd_and_reaches_eps() {
        for eps in [0.1, 0.01, 0.001] {
            let k = bbm_phases(eps, 0.25);
            assert_eq!(k % 2, 1);
            assert!((-2.0 * 0.0625 * k as f64).exp() <= eps);
        }
        assert_eq!(bbm_phases(0.001, 0.25), 57);
    }

    #[test]
    fn filter_weights_are_at_least_half_on_mistakes() {
        // A plurality mistake has margin F <= 0, so its weight is >= 1/2 (the certificate).
        for f in [-3.0, -0.5, 0.0] {
            assert!(filterboost_weight(f) >= 0.5);
            assert!(madaboost_weight(f) >= 0.5);
        }
        assert!(close(member_alpha(0.0), 0.0));
        assert!(smoothed_edge(0, 100) < 0.5);
        assert!(close(learnability_weight(0.5), 1.0));
        assert_eq!(zero_variance_weight(0, 4), 0.0);
        assert_eq!(zero_variance_weight(4, 4), 0.0);
        assert_eq!(zero_variance_weight(2, 4), 1.0);
    }

    proptest! {
        /// BBM weights are probabilities: in [0, 1], zero outside the majority boundary,
        /// and they satisfy the recursion w_i(r) = (1/2+g) w_{i+1}(r+1) + (1/2-g) w_{i+1}(r).
        #[test]
        fn bbm_weights_are_boundary_probabilities(half in 1usize..20, i_frac in 0.0f64..1.0, r in 0usize..40, g in 0.01f64..0.49) {
            let k = 2 * half + 1;
            let i = ((k - 1) as f64 * i_frac) as usize;
            let w = bbm_weight(k, i, r, g);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&w));
            // Already safe (r > K/2) or lost (r + remaining members < ceil(K/2)): zero.
            if r > k / 2 || r + (k - i - 1) < k / 2 {
                prop_assert_eq!(w, 0.0);
            }
            if i + 1 < k {
                let rec = (0.5 + g) * bbm_weight(k, i + 1, r + 1, g) + (0.5 - g) * bbm_weight(k, i + 1, r, g);
                prop_assert!((w - rec).abs() < 1e-9 * (1.0 + w));
            }
        }

        #[test]
        fn filterboost_weight_is_decreasing_in_margin(a in -20.0f64..20.0, b in -20.0f64..20.0) {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            prop_assert!(filterboost_weight(lo) >= filterboost_weight(hi));
            prop_assert!(madaboost_weight(lo) >= madaboost_weight(hi));
        }
    }
}
