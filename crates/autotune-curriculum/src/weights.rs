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

/// The paper's weights (Eq. 5 of Algorithm 2, and Eq. 17 for the stochastic variant) for `k`
/// phases, member error `err_star` and final threshold `threshold` (1/2 for Algorithm 1, 4/5
/// for Algorithm 3):
///
/// - `beta^{k,k}_r = 1[r <= threshold k]`,
///   `beta^{j,k}_r = err* beta^{j+1,k}_r + (1 - err*) beta^{j+1,k}_{r+1}` (the probability that
///   the final count of right members ends at or below the threshold, given `r` right among the
///   first `j`, if every later member is right independently with probability `1 - err*`);
/// - `alpha^{j,k}_r = beta^{j+1,k}_r - beta^{j+1,k}_{r+1}`, for `0 <= r <= j < k`.
///
/// Phase `j` accepts a prompt of rank `r` with probability `alpha^{j,k}_r / max_r' alpha^{j,k}_r'`.
#[derive(Clone, Debug)]
pub struct PaperWeights {
    k: usize,
    /// `L = floor(threshold k)`.
    limit: i64,
    /// `1 - err*`: the probability that a later member moves the rank up by one.
    up: f64,
    /// `ln i!` for `i in 0..=k`.
    ln_fact: Vec<f64>,
}

impl PaperWeights {
    /// Unrolling the recursion gives the closed form used here: `beta^{j,k}_r = Pr[r + B <= L]`
    /// with `B ~ Binomial(k - j, 1 - err*)` and `L = floor(threshold k)`, so
    /// `alpha^{j,k}_r = Pr[B' = L - r]` with `B' ~ Binomial(k - j - 1, 1 - err*)`. Memory is
    /// `O(k)` and every weight `O(1)`, so the paper's `k` in the hundreds of thousands (the
    /// stochastic variant's `err* = 1/400`) builds at once.
    pub fn new(k: usize, err_star: f64, threshold: f64) -> Self {
        let limit = (threshold * k as f64 + 1e-12).floor() as i64;
        let mut ln_fact = Vec::with_capacity(k + 1);
        let mut acc = 0.0f64;
        ln_fact.push(0.0);
        for i in 1..=k {
            acc += (i as f64).ln();
            ln_fact.push(acc);
        }
        Self {
            k,
            limit,
            up: 1.0 - err_star,
            ln_fact,
        }
    }

    /// The number of phases `k`.
    pub fn phases(&self) -> usize {
        self.k
    }

    /// `Pr[Binomial(n, up) = s]` (0 out of range).
    fn pmf(&self, n: i64, s: i64) -> f64 {
        if n < 0 || s < 0 || s > n {
            return 0.0;
        }
        let (nu, su) = (n as usize, s as usize);
        let lc = self.ln_fact[nu] - self.ln_fact[su] - self.ln_fact[nu - su];
        let down = 1.0 - self.up;
        let mut l = lc;
        if s > 0 {
            l += s as f64 * self.up.ln();
        }
        if n - s > 0 {
            l += (n - s) as f64 * down.ln();
        }
        l.exp()
    }

    /// `alpha^{j,k}_r` (0 outside `0..=j < k`).
    pub fn alpha(&self, j: usize, r: usize) -> f64 {
        if j >= self.k || r > j {
            return 0.0;
        }
        self.pmf((self.k - j - 1) as i64, self.limit - r as i64)
    }

    /// `max_r alpha^{j,k}_r` over `r in 0..=j`: the binomial is unimodal, so the maximum is at
    /// its mode clamped to the reachable range `s = L - r in [L - j, L]`.
    fn max_alpha(&self, j: usize) -> f64 {
        if j >= self.k {
            return 0.0;
        }
        let n = (self.k - j - 1) as i64;
        let lo = (self.limit - j as i64).max(0);
        let hi = self.limit.min(n);
        if lo > hi {
            return 0.0;
        }
        let mode = (((n + 1) as f64) * self.up).floor() as i64;
        let m = mode.clamp(lo, hi);
        // Guard the floor at the mode's edge: the neighbours are checked too.
        [m - 1, m, m + 1]
            .into_iter()
            .filter(|s| (lo..=hi).contains(s))
            .map(|s| self.pmf(n, s))
            .fold(0.0, f64::max)
    }

    /// The acceptance probability `alpha^{j,k}_r / max_r' alpha^{j,k}_r'` of Algorithm 2 (0
    /// where every weight of the phase is 0).
    pub fn accept(&self, j: usize, r: usize) -> f64 {
        let m = self.max_alpha(j);
        if m > 0.0 {
            (self.alpha(j, r) / m).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The paper's number of phases `k = ceil(C ln(1/eps) / err*^2)`.
pub fn paper_phases(c: f64, eps: f64, err_star: f64) -> usize {
    ((c * (1.0 / eps).ln() / (err_star * err_star)).ceil() as usize).max(1)
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

    #[test]
    fn paper_phases_match_the_spec() {
        assert_eq!(paper_phases(1.0, 1e-3, 0.25), 111);
        assert_eq!(paper_phases(2.0, 1e-3, 0.25), 222);
        assert_eq!(paper_phases(0.5, 1e-2, 0.25), 37);
    }

    #[test]
    fn paper_weights_k3_by_hand() {
        // k = 3, err* = 1/4, threshold 1/2: beta^3_r = 1[r <= 1].
        let w = PaperWeights::new(3, 0.25, 0.5);
        // Phase 2: alpha_r = beta^3_r - beta^3_{r+1}: r = 1 -> 1, r = 0 -> 0, r = 2 -> 0.
        assert!(close(w.alpha(2, 1), 1.0));
        assert_eq!(w.alpha(2, 0), 0.0);
        assert_eq!(w.alpha(2, 2), 0.0);
        // beta^2_r = 1/4 beta^3_r + 3/4 beta^3_{r+1}: beta^2_0 = 1, beta^2_1 = 1/4, beta^2_2 = 0.
        // Phase 1: alpha_0 = 3/4, alpha_1 = 1/4.
        assert!(close(w.alpha(1, 0), 0.75));
        assert!(close(w.alpha(1, 1), 0.25));
        assert!(close(w.accept(1, 1), 1.0 / 3.0));
        assert!(close(w.accept(0, 0), 1.0));
    }

    proptest! {
        /// The paper's recursion equals the binomial form of boost-by-majority with
        /// 1/2 + gamma = 1 - err* (odd k, threshold 1/2).
        #[test]
        fn paper_weights_equal_bbm(half in 0usize..40, j_frac in 0.0f64..1.0, err in 0.02f64..0.48) {
            let k = 2 * half + 1;
            let j = ((k - 1) as f64 * j_frac) as usize;
            let w = PaperWeights::new(k, err, 0.5);
            for r in 0..=j {
                let b = bbm_weight(k, j, r, 0.5 - err);
                prop_assert!((w.alpha(j, r) - b).abs() < 1e-9, "j={} r={} {} vs {}", j, r, w.alpha(j, r), b);
            }
        }

        /// The closed form equals the paper's recursion, run as written (k^2 table), at any
        /// threshold, and the O(1) maximum equals the maximum over every rank.
        #[test]
        fn paper_weights_follow_the_recursion(k in 1usize..80, err in 0.02f64..0.48, th in 0.3f64..0.95) {
            let w = PaperWeights::new(k, err, th);
            let limit = th * k as f64;
            let mut beta: Vec<f64> = (0..=k + 1).map(|r| f64::from(u8::from(r as f64 <= limit + 1e-12))).collect();
            for j in (0..k).rev() {
                let alpha: Vec<f64> = (0..=j).map(|r| beta[r] - beta[r + 1]).collect();
                for (r, a) in alpha.iter().enumerate() {
                    prop_assert!((w.alpha(j, r) - a).abs() < 1e-9, "j={} r={} {} vs {}", j, r, w.alpha(j, r), a);
                }
                let m = alpha.iter().copied().fold(0.0, f64::max);
                for (r, a) in alpha.iter().enumerate() {
                    let want = if m > 0.0 { a / m } else { 0.0 };
                    // The recursion subtracts numbers near 1: its ratios carry an error of about
                    // 1e-15 / m, the closed form does not.
                    prop_assert!((w.accept(j, r) - want).abs() < 1e-9 + 1e-13 / m.max(1e-300), "accept j={} r={} {} vs {} m={}", j, r, w.accept(j, r), want, m);
                }
                beta = (0..=k + 1).map(|r| err * beta[r] + (1.0 - err) * beta.get(r + 1).copied().unwrap_or(0.0)).collect();
            }
        }

        /// Acceptance probabilities are in [0, 1] with maximum 1 in every phase.
        #[test]
        fn paper_acceptance_is_normalised(k in 1usize..120, err in 0.02f64..0.3, th in 0.5f64..0.9) {
            let w = PaperWeights::new(k, err, th);
            for j in 0..k {
                let a: Vec<f64> = (0..=j).map(|r| w.accept(j, r)).collect();
                prop_assert!(a.iter().all(|x| (0.0..=1.0).contains(x)));
                let m = a.iter().copied().fold(0.0, f64::max);
                prop_assert!(m == 0.0 || (m - 1.0).abs() < 1e-12);
            }
        }

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
