//! Small CSV tables with known answers for the tests of the `csv` data type: a linear regression
//! (with a categorical column and an ID to exclude), three separable classes (`;`-delimited) and
//! two labels that are signs of two columns; and the least-squares fit the regression's R² is
//! held against.

use std::fmt::Write as _;
use std::path::Path;

/// A seeded generator (splitmix64) with normal draws (Box-Muller), so the tables are the same on
/// every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The regression's true weights on `x1, x2, x3`, its intercept, the effect of `region` (north,
/// south) and the noise's standard deviation.
pub const WEIGHTS: [f64; 3] = [2.0, -1.0, 0.5];
pub const INTERCEPT: f64 = 50.0;
pub const REGION: [(&str, f64); 2] = [("north", 1.5), ("south", -1.5)];
pub const NOISE: f64 = 0.3;

/// One regression row: `(x, region index, y)`.
pub type RegressionRow = ([f64; 3], usize, f64);

/// `rows` rows of `y = INTERCEPT + WEIGHTS · x + REGION[r] + noise`, written as
/// `id,x1,x2,x3,region,price` to `path`; returns them.
pub fn write_regression(path: &Path, rows: usize, seed: u64) -> std::io::Result<Vec<RegressionRow>> {
    let mut rng = Rng::new(seed);
    let mut text = String::from("id,x1,x2,x3,region,price\n");
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let x = [rng.normal(), rng.normal(), rng.normal()];
        let region = usize::from(rng.uniform() < 0.5);
        let y = INTERCEPT
            + WEIGHTS.iter().zip(&x).map(|(w, v)| w * v).sum::<f64>()
            + REGION[region].1
            + NOISE * rng.normal();
        let _ = writeln!(text, "{},{:.5},{:.5},{:.5},{},{:.5}", 1000 + i, x[0], x[1], x[2], REGION[region].0, y);
        // What the file says, not the unrounded numbers: the fit below sees what the model sees.
        let round = |v: f64| format!("{v:.5}").parse::<f64>().expect("a number");
        out.push((x.map(round), region, round(y)));
    }
    std::fs::write(path, text)?;
    Ok(out)
}

/// The least-squares fit of `train` (intercept, x1..x3 and a south indicator), and its R² on `test`.
pub fn least_squares_r2(train: &[RegressionRow], test: &[RegressionRow]) -> f64 {
    let features = |(x, region, _): &RegressionRow| [1.0, x[0], x[1], x[2], *region as f64];
    // Normal equations A^T A w = A^T y, solved by Gaussian elimination with partial pivoting.
    let mut m = [[0.0f64; 6]; 5];
    for row in train {
        let f = features(row);
        for i in 0..5 {
            for j in 0..5 {
                m[i][j] += f[i] * f[j];
            }
            m[i][5] += f[i] * row.2;
        }
    }
    for col in 0..5 {
        let pivot = (col..5).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs())).expect("rows");
        m.swap(col, pivot);
        for r in 0..5 {
            if r != col {
                let (pivot_row, factor) = (m[col], m[r][col] / m[col][col]);
                for (x, p) in m[r][col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= factor * p;
                }
            }
        }
    }
    let w: Vec<f64> = (0..5).map(|i| m[i][5] / m[i][i]).collect();
    let mean = test.iter().map(|r| r.2).sum::<f64>() / test.len() as f64;
    let (mut sse, mut sst) = (0.0, 0.0);
    for row in test {
        let predicted: f64 = features(row).iter().zip(&w).map(|(f, w)| f * w).sum();
        sse += (row.2 - predicted).powi(2);
        sst += (row.2 - mean).powi(2);
    }
    1.0 - sse / sst
}

/// The classes of [`write_classes`], whose points sit around three far-apart centres.
pub const SPECIES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// `rows` rows of `petal;sepal;species` (`;`-delimited), class `i % 3` around centre `i`.
pub fn write_classes(path: &Path, rows: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let centres = [(0.0, 0.0), (6.0, 0.0), (0.0, 6.0)];
    let mut text = String::from("petal;sepal;species\n");
    for i in 0..rows {
        let (cx, cy) = centres[i % 3];
        let _ = writeln!(text, "{:.4};{:.4};{}", cx + rng.normal(), cy + rng.normal(), SPECIES[i % 3]);
    }
    std::fs::write(path, text)
}

/// `rows` rows of `a,b,c,label_a,label_b`: `label_a` is 1 where `a > 0`, `label_b` where `b > 0`
/// (`c` is noise), so both labels are linearly separable.
pub fn write_labels(path: &Path, rows: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut text = String::from("a,b,c,label_a,label_b\n");
    for _ in 0..rows {
        let (a, b, c) = (rng.normal(), rng.normal(), rng.normal());
        let _ = writeln!(text, "{a:.4},{b:.4},{c:.4},{},{}", u8::from(a > 0.0), u8::from(b > 0.0));
    }
    std::fs::write(path, text)
}

/// The side of [`write_image_levels`]'s images.
pub const LEVEL_IMAGE_SIDE: u32 = 28;

/// A table naming images, for an image regression: `rows` grey 28x28 PNGs under
/// `dir/<stem>/`, each a square of brightness `level / 10` (`level` uniform in [0, 10]) at a
/// random place on a noisy dark background, listed in `dir/<stem>.csv` as `file,level` with
/// file names relative to the table.
pub fn write_image_levels(dir: &Path, stem: &str, rows: usize, seed: u64) -> std::io::Result<()> {
    let side = LEVEL_IMAGE_SIDE;
    std::fs::create_dir_all(dir.join(stem))?;
    let mut rng = Rng::new(seed);
    let mut text = String::from("file,level\n");
    for i in 0..rows {
        let level = 10.0 * rng.uniform();
        let (x0, y0) = ((rng.uniform() * 12.0) as u32, (rng.uniform() * 12.0) as u32);
        let mut rgb = Vec::with_capacity((side * side * 3) as usize);
        for y in 0..side {
            for x in 0..side {
                let inside = (x0..x0 + 14).contains(&x) && (y0..y0 + 14).contains(&y);
                let value = if inside { 50.0 + 20.0 * level } else { 30.0 * rng.uniform() };
                rgb.extend([value as u8; 3]);
            }
        }
        let file = format!("{stem}/{i}.png");
        crate::images::write_png(&dir.join(&file), side, side, &rgb)?;
        writeln!(text, "{file},{level:.4}").expect("writing to a String");
    }
    std::fs::write(dir.join(format!("{stem}.csv")), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_the_weights_of_noiseless_data() {
        let dir = std::env::temp_dir().join(format!("tables-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rows = write_regression(&dir.join("r.csv"), 400, 1).unwrap();
        let r2 = least_squares_r2(&rows[..300], &rows[300..]);
        // Signal variance 4 + 1 + 0.25 + 2.25 = 7.5 against noise 0.09: R² about 0.988.
        assert!(r2 > 0.98 && r2 < 0.995, "{r2}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
