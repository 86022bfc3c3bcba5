//! Seeded input mutation for the parser tests: from a valid file, the damaged files a user's disk,
//! editor or download can produce (flipped bits, cut or repeated pieces, odd bytes, absurd numbers in
//! headers), plus random bytes. Same seed, same inputs: a failing case is named by its number.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bytes that parsers treat specially: ends, quotes, delimiters, signs, brackets, high bits.
const INTERESTING_BYTES: &[u8] = b"\0\xff\x7f\x80\"',;\t\r\n{}[]:-+.eE0123456789 \\";

/// Numbers that break size arithmetic when they land in a header.
const INTERESTING_U32: &[u32] = &[0, 1, 2, 0x7f, 0xff, 0x100, 0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

pub struct Mutator {
    rng: ChaCha8Rng,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// `valid` damaged by one to four edits; now and then random bytes instead.
    pub fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        if self.rng.random_ratio(1, 16) {
            let len = self.rng.random_range(0..=valid.len().max(16) * 2);
            return (0..len).map(|_| self.rng.random()).collect();
        }
        let mut out = valid.to_vec();
        for _ in 0..self.rng.random_range(1..=4) {
            self.edit(&mut out);
        }
        out
    }

    /// One of `choices`.
    pub fn pick<'a, T>(&mut self, choices: &'a [T]) -> &'a T {
        &choices[self.rng.random_range(0..choices.len())]
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    fn edit(&mut self, out: &mut Vec<u8>) {
        let len = out.len();
        let at = self.rng.random_range(0..=len);
        match self.rng.random_range(0..8) {
            0 if len > 0 => out[at.min(len - 1)] ^= 1 << self.rng.random_range(0..8),
            1 if len > 0 => out[at.min(len - 1)] = *self.pick(INTERESTING_BYTES),
            2 => {
                let n = self.rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| *self.pick(INTERESTING_BYTES)).collect();
                out.splice(at..at, bytes);
            }
            3 => out.truncate(at),
            4 if len > 0 => {
                // Cut a piece out.
                let end = self.rng.random_range(at..=len);
                out.drain(at.min(len)..end);
            }
            5 if len > 0 => {
                // Repeat a piece.
                let start = self.rng.random_range(0..len);
                let end = self.rng.random_range(start..=len.min(start + 64));
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            6 if len >= 4 => {
                // An absurd number where a header may hold one, in either byte order.
                let word = *self.pick(INTERESTING_U32);
                let bytes = if self.rng.random() { word.to_be_bytes() } else { word.to_le_bytes() };
                let start = self.rng.random_range(0..=len - 4);
                out[start..start + 4].copy_from_slice(&bytes);
            }
            _ if len > 0 => out[at.min(len - 1)] = self.rng.random(),
            _ => out.push(self.rng.random()),
        }
    }
}
