//! Small numeric kernels on `f32` slices that burn's flex backend does one element at a time:
//! the exact (erf) GELU and its derivative, `exp`, and the attention of one query over the
//! cached keys and values.
//!
//! burn's `gelu` and `gelu_backward` call a scalar `erff` (and `expf`) per element, which made
//! GELU about a sixth of a training step and of generation. Here `erf` is the same
//! approximation PyTorch's vectorised CPU kernels use (Abramowitz and Stegun 7.1.26, absolute
//! error below 1.5e-7) and `exp` a Cephes-style polynomial (relative error about 1e-7), written
//! without branches so that the compiler vectorises them. Only `+ - * /`, comparisons and bit
//! operations are used (no fused multiply-add): every path, the AVX2 one chosen at run time or
//! the baseline one, gives the same bits.

/// `exp(x)`: 0 below -87 (no subnormal results), clamped at `exp(88)` above.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer, kept in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * (r * r) + r + 1.0;
    let e = (t.to_bits() as i32)
        .wrapping_sub(0x4B40_0000)
        .wrapping_add(127)
        << 23;
    let y = y * f32::from_bits(e as u32);
    if x > -87.0 {
        y
    } else {
        0.0
    }
}

/// `(Phi(x), phi(x))`: the standard normal CDF (from A&S 7.1.26's `erfc`, without
/// cancellation for negative `x`) and density.
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let e = exp(-0.5 * x * x);
    // erfc(z) = poly * exp(-z^2); Phi(x) = 1 - erfc(z) / 2 for x >= 0, erfc(z) / 2 below.
    let half_erfc = 0.5 * poly * e;
    let cdf = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    (cdf, e * FRAC_1_SQRT_2PI)
}

macro_rules! dispatched {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { generic($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

dispatched! {
    /// `x <- gelu(x) = x Phi(x)`, in place.
    pub fn gelu_in_place(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            let (cdf, _) = normal_cdf_pdf(*x);
            *x *= cdf;
        }
    }
}

dispatched! {
    /// For a GELU with autodiff: `slope = gelu'(x) = Phi(x) + x phi(x)` and
    /// `offset = gelu(x) - x * slope`, so that `x * slope + offset` is `gelu(x)` (to rounding)
    /// and its derivative in `x`, with `slope` and `offset` held constant, is `gelu'(x)`.
    pub fn gelu_slope_offset(xs: &[f32], slope: &mut [f32], offset: &mut [f32]) {
        for ((&x, s), o) in xs.iter().zip(slope.iter_mut()).zip(offset.iter_mut()) {
            let (cdf, pdf) = normal_cdf_pdf(x);
            let d = cdf + x * pdf;
            *s = d;
            *o = x * cdf - x * d;
        }
    }
}

dispatched! {
    /// The attention of one query over `n` keys and values (rows of `d_k` in `keys` and
    /// `values`): `out = softmax(q.k / scale) . v`; `weights` (at least `n` long) is scratch.
    pub fn attend_one(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        weights: &mut [f32],
        out: &mut [f32]
    ) {
        let d_k = q.len();
        let n = keys.len() / d_k;
        let weights = &mut weights[..n];
        let mut max = f32::NEG_INFINITY;
        for (w, k) in weights.iter_mut().zip(keys.chunks_exact(d_k)) {
            let mut acc = [0f32; 8];
            let (cq, ck) = (q.chunks_exact(8), k.chunks_exact(8));
            let (rq, rk) = (cq.remainder(), ck.remainder());
            for (x, y) in cq.zip(ck) {
                for j in 0..8 {
                    acc[j] += x[j] * y[j];
                }
            }
            let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (x, y) in rq.iter().zip(rk) {
                s += x * y;
            }
            *w = s / scale;
            max = max.max(*w);
        }
        let mut sum = 0.0;
        for w in weights.iter_mut() {
            *w = exp(*w - max);
            sum += *w;
        }
        let inv = 1.0 / sum;
        out.fill(0.0);
        for (&w, v) in weights.iter().zip(values.chunks_exact(d_k)) {
            let p = w * inv;
            for (o, &v) in out.iter_mut().zip(v) {
                *o += p * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_ref(x: f64) -> f64 {
        // erf by its Taylor series (converges for the |x| <= 4 used here, in f64).
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_is_accurate() {
        for i in -8000..=8000 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn gelu_and_its_slope_are_accurate() {
        let xs: Vec<f32> = (-400..=400).map(|i| i as f32 / 100.0).collect();
        let mut ys = xs.clone();
        gelu_in_place(&mut ys);
        let (mut slope, mut offset) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        gelu_slope_offset(&xs, &mut slope, &mut offset);
        for (i, &x) in xs.iter().enumerate() {
            let xd = x as f64;
            let cdf = 0.5 * (1.0 + erf_ref(xd / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (gelu, d) = (xd * cdf, cdf + xd * pdf);
            assert!(
                (ys[i] as f64 - gelu).abs() < 1e-6,
                "gelu({x}) = {}, want {gelu}",
                ys[i]
            );
            let sum = x * slope[i] + offset[i];
            assert!(
                (sum as f64 - gelu).abs() < 1e-6,
                "x*slope+offset at {x}: {sum} vs {gelu}"
            );
            assert!(
                (slope[i] as f64 - d).abs() < 1e-6,
                "gelu'({x}) = {}, want {d}",
                slope[i]
            );
        }
        // Far tails: 0 and x, finite.
        let mut tails = [-30.0f32, 30.0, -1e30, 1e30];
        gelu_in_place(&mut tails);
        assert_eq!(tails[0].abs(), 0.0);
        assert_eq!(tails[1], 30.0);
        assert!(tails.iter().all(|t| t.is_finite()));
    }

    #[test]
    fn attention_of_one_query_is_a_softmax_average() {
        let d_k = 12;
        let q: Vec<f32> = (0..d_k).map(|i| (i as f32 * 0.37).sin()).collect();
        let keys: Vec<f32> = (0..5 * d_k).map(|i| (i as f32 * 0.11).cos()).collect();
        let values: Vec<f32> = (0..5 * d_k).map(|i| i as f32 * 0.01).collect();
        let (mut w, mut out) = (vec![0.0; 8], vec![0.0; d_k]);
        attend_one(&q, &keys, &values, 2.0, &mut w, &mut out);
        let scores: Vec<f64> = keys
            .chunks(d_k)
            .map(|k| q.iter().zip(k).map(|(a, b)| (a * b) as f64).sum::<f64>() / 2.0)
            .collect();
        let max = scores.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = e.iter().sum();
        for j in 0..d_k {
            let want: f64 = (0..5)
                .map(|c| e[c] / total * values[c * d_k + j] as f64)
                .sum();
            assert!(
                (out[j] as f64 - want).abs() < 1e-6,
                "{j}: {} vs {want}",
                out[j]
            );
        }
    }
}
