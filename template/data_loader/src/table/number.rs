//! Numbers in fields: a fast path for plain decimals that gives exactly what `str::parse` gives,
//! and the checks that a number is finite and fits in the f32 the model computes in.

/// Why a field is not a usable number.
#[derive(Clone, Copy)]
pub(super) enum NumberProblem {
    NotANumber,
    NotFinite,
    OutOfRange,
}

impl NumberProblem {
    pub(super) fn describe(&self, value: &str) -> String {
        match self {
            NumberProblem::NotANumber => format!("{value:?} is not a number"),
            NumberProblem::NotFinite => {
                format!("{value:?} is not a finite number; leave the field empty for a missing value")
            }
            NumberProblem::OutOfRange => format!(
                "{value:?} is beyond the range of f32 (about ±3.4e38) that the model computes in; rescale the column"
            ),
        }
    }
}

/// A finite number that fits in f32.
#[inline]
pub(super) fn parse_number(value: &str) -> std::result::Result<f64, NumberProblem> {
    let x = parse_f64(value).ok_or(NumberProblem::NotANumber)?;
    if !x.is_finite() {
        Err(NumberProblem::NotFinite)
    } else if x.abs() > f64::from(f32::MAX) {
        Err(NumberProblem::OutOfRange)
    } else {
        Ok(x)
    }
}

/// Powers of ten that are exact in f64, for [`parse_f64`]'s fast path (and the same path in
/// `rows`, which reads plain decimals as it splits a row).
pub(super) const EXACT_POWERS_OF_TEN: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// `value` as f64, the same number `str::parse` gives, only faster for what CSV files mostly
/// hold. A plain decimal (`-12.375`) of at most 15 digits is its digits as an integer (below
/// 2^53, so exact in f64) divided by a power of ten (exact up to 10^22): one correctly rounded
/// division, hence the correctly rounded value, as `str::parse` returns. Anything else (exponents,
/// longer numbers, `inf`, words) goes to `str::parse`.
#[inline]
pub(super) fn parse_f64(value: &str) -> Option<f64> {
    let bytes = value.as_bytes();
    let (negative, unsigned) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    // One pass, one data-dependent branch per byte: this runs for every numeric field.
    let (mut mantissa, mut digits, mut decimals) = (0u64, 0usize, None);
    for &b in unsigned {
        let digit = b.wrapping_sub(b'0');
        if digit < 10 && digits + 1 < EXACT_POWERS_OF_TEN.len() {
            mantissa = mantissa * 10 + u64::from(digit);
            digits += 1;
        } else if b == b'.' && decimals.is_none() {
            decimals = Some(digits);
        } else {
            // An exponent, a word, or more digits than the fast path takes.
            return value.parse().ok();
        }
    }
    if digits == 0 {
        return value.parse().ok();
    }
    let x = mantissa as f64 / EXACT_POWERS_OF_TEN[decimals.map_or(0, |whole| digits - whole)];
    Some(if negative { -x } else { x })
}
