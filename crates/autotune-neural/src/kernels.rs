//! Small numeric kernels on `f32` slices that burn's flex backend does one element at a time:
//! the exact (erf) GELU, its tanh approximation (GPT-2's) and their derivatives, `exp`, and the attention of one query over the
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
    p = p * r + 0.5;
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
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
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

/// Elements per parallel task of the elementwise kernels (rayon, in fixed chunks: the result
/// does not depend on the number of threads).
const CHUNK: usize = 32 * 1024;

/// `x <- gelu(x) = x Phi(x)`, in place, in parallel.
pub fn gelu_in_place(xs: &mut [f32]) {
    use rayon::prelude::*;
    xs.par_chunks_mut(CHUNK).for_each(gelu_in_place_serial);
}

/// [`gelu_slope_offset_serial`] in parallel.
pub fn gelu_slope_offset(xs: &[f32], slope: &mut [f32], offset: &mut [f32]) {
    use rayon::prelude::*;
    xs.par_chunks(CHUNK)
        .zip(slope.par_chunks_mut(CHUNK))
        .zip(offset.par_chunks_mut(CHUNK))
        .for_each(|((x, s), o)| gelu_slope_offset_serial(x, s, o));
}

dispatched! {
    /// `x <- gelu(x) = x Phi(x)`, in place.
    pub fn gelu_in_place_serial(xs: &mut [f32]) {
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
    pub fn gelu_slope_offset_serial(xs: &[f32], slope: &mut [f32], offset: &mut [f32]) {
        for ((&x, s), o) in xs.iter().zip(slope.iter_mut()).zip(offset.iter_mut()) {
            let (cdf, pdf) = normal_cdf_pdf(x);
            let d = cdf + x * pdf;
            *s = d;
            *o = x * cdf - x * d;
        }
    }
}

/// `sqrt(2 / pi)` and the cubic coefficient of the tanh approximation of GELU (GPT-2's
/// `gelu_new`, PyTorch's `gelu(approximate="tanh")`).
const GELU_TANH_C: f32 = 0.797_884_6;
const GELU_TANH_A: f32 = 0.044_715;

/// `tanh(u) = 1 - 2 / (exp(2u) + 1)`, from [`exp`]: absolute error about 1e-7; exactly -1 and
/// 1 in the tails.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * u) + 1.0)
}

/// `x <- gelu_tanh(x) = x (1 + tanh(c (x + a x^3))) / 2`, in place, in parallel.
pub fn gelu_tanh_in_place(xs: &mut [f32]) {
    use rayon::prelude::*;
    xs.par_chunks_mut(CHUNK).for_each(gelu_tanh_in_place_serial);
}

/// [`gelu_tanh_slope_offset_serial`] in parallel.
pub fn gelu_tanh_slope_offset(xs: &[f32], slope: &mut [f32], offset: &mut [f32]) {
    use rayon::prelude::*;
    xs.par_chunks(CHUNK)
        .zip(slope.par_chunks_mut(CHUNK))
        .zip(offset.par_chunks_mut(CHUNK))
        .for_each(|((x, s), o)| gelu_tanh_slope_offset_serial(x, s, o));
}

dispatched! {
    /// `x <- gelu_tanh(x)`, in place.
    pub fn gelu_tanh_in_place_serial(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            let v = *x;
            let t = tanh(GELU_TANH_C * (v + GELU_TANH_A * v * v * v));
            *x = 0.5 * v * (1.0 + t);
        }
    }
}

dispatched! {
    /// As [`gelu_slope_offset_serial`] for the tanh GELU: `slope = gelu_tanh'(x) =
    /// (1 + t) / 2 + x (1 - t^2) c (1 + 3 a x^2) / 2` with `t = tanh(c (x + a x^3))`.
    pub fn gelu_tanh_slope_offset_serial(xs: &[f32], slope: &mut [f32], offset: &mut [f32]) {
        for ((&x, s), o) in xs.iter().zip(slope.iter_mut()).zip(offset.iter_mut()) {
            let t = tanh(GELU_TANH_C * (x + GELU_TANH_A * x * x * x));
            let g = 0.5 * x * (1.0 + t);
            let d = 0.5 * (1.0 + t)
                + 0.5 * x * (1.0 - t * t) * GELU_TANH_C * (1.0 + 3.0 * GELU_TANH_A * x * x);
            *s = d;
            *o = g - x * d;
        }
    }
}

dispatched! {
    /// The attention of one query `q` (`d_k` long) over the keys and values of columns
    /// `range = (lo, hi)`: `out = softmax(q.k / scale) . v`. `keys_t` holds the keys transposed, `d_k`
    /// rows of `columns` (so that 8 columns' scores are computed at once); `values` holds
    /// the values of columns `lo..hi`, `d_k` each. `weights` (at least `hi - lo` long) is
    /// scratch.
    pub fn attend_one(
        q: &[f32],
        keys_t: &[f32],
        columns: usize,
        range: (usize, usize),
        values: &[f32],
        scale: f32,
        weights: &mut [f32],
        out: &mut [f32]
    ) {
        let (lo, hi) = range;
        let weights = &mut weights[..hi - lo];
        match q.len() {
            8 => scores::<8>(q, keys_t, columns, lo, hi, scale, weights),
            16 => scores::<16>(q, keys_t, columns, lo, hi, scale, weights),
            24 => scores::<24>(q, keys_t, columns, lo, hi, scale, weights),
            32 => scores::<32>(q, keys_t, columns, lo, hi, scale, weights),
            48 => scores::<48>(q, keys_t, columns, lo, hi, scale, weights),
            64 => scores::<64>(q, keys_t, columns, lo, hi, scale, weights),
            _ => scores_any(q, keys_t, columns, lo, hi, scale, weights),
        }
        let max = weights.iter().fold(f32::NEG_INFINITY, |m, &w| m.max(w));
        softmax_in_place(weights, max);
        match q.len() {
            8 => weighted_sum::<8>(weights, values, out),
            16 => weighted_sum::<16>(weights, values, out),
            24 => weighted_sum::<24>(weights, values, out),
            32 => weighted_sum::<32>(weights, values, out),
            48 => weighted_sum::<48>(weights, values, out),
            64 => weighted_sum::<64>(weights, values, out),
            _ => weighted_sum_any(weights, values, out),
        }
    }
}

/// `weights[c - lo] = q . k_c / scale` for columns `lo..hi`, 8 columns at a time.
#[inline(always)]
fn scores<const D: usize>(
    q: &[f32],
    keys_t: &[f32],
    columns: usize,
    lo: usize,
    hi: usize,
    scale: f32,
    weights: &mut [f32],
) {
    let q: &[f32; D] = q.try_into().expect("d_k");
    let mut c = lo;
    while c + 8 <= hi {
        // Four independent sums (j mod 4), added at the end: not one chain of D additions.
        let mut acc = [[0f32; 8]; 4];
        for j0 in (0..D).step_by(4) {
            for (u, acc) in acc.iter_mut().enumerate() {
                let j = j0 + u;
                let k: &[f32; 8] = keys_t[j * columns + c..j * columns + c + 8]
                    .try_into()
                    .expect("8 columns");
                for l in 0..8 {
                    acc[l] += q[j] * k[l];
                }
            }
        }
        for l in 0..8 {
            let s = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
            weights[c - lo + l] = s / scale;
        }
        c += 8;
    }
    for c in c..hi {
        let mut s = 0f32;
        for (j, &qj) in q.iter().enumerate() {
            s += qj * keys_t[j * columns + c];
        }
        weights[c - lo] = s / scale;
    }
}

/// [`scores`] for any `d_k`.
#[inline(always)]
fn scores_any(
    q: &[f32],
    keys_t: &[f32],
    columns: usize,
    lo: usize,
    hi: usize,
    scale: f32,
    weights: &mut [f32],
) {
    for c in lo..hi {
        let mut s = 0f32;
        for (j, &qj) in q.iter().enumerate() {
            s += qj * keys_t[j * columns + c];
        }
        weights[c - lo] = s / scale;
    }
}

/// `out = sum_c weights[c] values[c]` with `D`-long value rows: the sum stays in registers.
#[inline(always)]
fn weighted_sum<const D: usize>(weights: &[f32], values: &[f32], out: &mut [f32]) {
    // Two independent sums (even and odd columns), added at the end.
    let mut acc = [[0f32; D]; 2];
    let pairs = weights.chunks_exact(2).zip(values.chunks_exact(2 * D));
    for (p, v) in pairs {
        for (u, acc) in acc.iter_mut().enumerate() {
            let v: &[f32; D] = v[u * D..(u + 1) * D].try_into().expect("d_k");
            for j in 0..D {
                acc[j] += p[u] * v[j];
            }
        }
    }
    if weights.len() % 2 == 1 {
        let p = weights[weights.len() - 1];
        let v = &values[(weights.len() - 1) * D..weights.len() * D];
        for j in 0..D {
            acc[0][j] += p * v[j];
        }
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = acc[0][j] + acc[1][j];
    }
}

/// [`weighted_sum`] for any row length.
#[inline(always)]
fn weighted_sum_any(weights: &[f32], values: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for (&p, v) in weights.iter().zip(values.chunks_exact(out.len())) {
        for (o, &v) in out.iter_mut().zip(v) {
            *o += p * v;
        }
    }
}

/// `sum(a)` in 8 interleaved partial sums (a fixed order: the same bits on every path).
#[inline(always)]
fn sum8(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The softmax of `weights` in place (`max` is their maximum).
#[inline(always)]
fn softmax_in_place(weights: &mut [f32], max: f32) {
    for w in weights.iter_mut() {
        *w = exp(*w - max);
    }
    let inv = 1.0 / sum8(weights);
    for w in weights.iter_mut() {
        *w *= inv;
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
    fn the_tanh_gelu_and_its_slope_are_accurate() {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let xs: Vec<f32> = (-600..=600).map(|i| i as f32 / 100.0).collect();
        let mut ys = xs.clone();
        gelu_tanh_in_place(&mut ys);
        let (mut slope, mut offset) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        gelu_tanh_slope_offset(&xs, &mut slope, &mut offset);
        for (i, &x) in xs.iter().enumerate() {
            let xd = x as f64;
            let t = (c * (xd + 0.044715 * xd.powi(3))).tanh();
            let g = 0.5 * xd * (1.0 + t);
            // The derivative by central differences of the f64 formula.
            let f = |x: f64| 0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh());
            let d = (f(xd + 1e-6) - f(xd - 1e-6)) / 2e-6;
            assert!(
                (ys[i] as f64 - g).abs() < 1e-6,
                "gelu_tanh({x}) = {}, want {g}",
                ys[i]
            );
            let sum = x * slope[i] + offset[i];
            assert!(
                (sum as f64 - g).abs() < 1e-6,
                "x*slope+offset at {x}: {sum} vs {g}"
            );
            assert!(
                (slope[i] as f64 - d).abs() < 1e-5,
                "gelu_tanh'({x}) = {}, want {d}",
                slope[i]
            );
        }
        let mut tails = [-30.0f32, 30.0, -1e30, 1e30];
        gelu_tanh_in_place(&mut tails);
        assert_eq!(tails[0].abs(), 0.0);
        assert_eq!(tails[1], 30.0);
        assert!(tails.iter().all(|t| t.is_finite()), "{tails:?}");
    }

    #[test]
    fn attention_of_one_query_is_a_softmax_average() {
        for d_k in [12, 24] {
            attention_check(d_k);
        }
    }

    fn attention_check(d_k: usize) {
        let q: Vec<f32> = (0..d_k).map(|i| (i as f32 * 0.37).sin()).collect();
        let keys: Vec<f32> = (0..5 * d_k).map(|i| (i as f32 * 0.11).cos()).collect();
        let values: Vec<f32> = (0..5 * d_k).map(|i| i as f32 * 0.01).collect();
        // Keys transposed, in a buffer of 13 columns of which 3..8 are used (5 keys).
        let (columns, lo) = (13, 3);
        let mut keys_t = vec![f32::NAN; d_k * columns];
        for c in 0..5 {
            for j in 0..d_k {
                keys_t[j * columns + lo + c] = keys[c * d_k + j];
            }
        }
        let (mut w, mut out) = (vec![0.0; 8], vec![0.0; d_k]);
        attend_one(
            &q,
            &keys_t,
            columns,
            (lo, lo + 5),
            &values,
            2.0,
            &mut w,
            &mut out,
        );
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
