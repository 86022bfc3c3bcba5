//! Number parsing: the fast path gives exactly what `str::parse` gives.

use crate::table::number::parse_f64;

#[test]
fn the_fast_number_parser_agrees_with_std() {
    let fixed = [
        "0",
        "-0",
        "+7",
        "1.",
        ".5",
        "-.25",
        "007.50",
        "123456789012345",
        "1234567890123456",
        "0.1",
        "0.3",
        "9007199254740993",
        "1e5",
        "-2.5E-3",
        "inf",
        "-infinity",
        "NaN",
        ".",
        "-",
        "+",
        "1.2.3",
        "1,5",
        "0x10",
        "12a",
        "",
        "999999999999999.9",
        "0.000000000000001",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let random: Vec<String> = (0..20_000)
        .map(|_| {
            let len = 1 + (next() % 19) as usize;
            let mut s: String = (0..len).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
            if next() % 4 != 0 {
                s.insert((next() as usize) % (len + 1), '.');
            }
            if next() % 3 == 0 {
                s.insert(0, '-');
            }
            s
        })
        .collect();
    for value in fixed.iter().copied().chain(random.iter().map(String::as_str)) {
        let expected = value.parse::<f64>().ok().map(f64::to_bits);
        assert_eq!(parse_f64(value).map(f64::to_bits), expected, "{value:?}");
    }
}
