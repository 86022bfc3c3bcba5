//! Reading: delimiters, BOM and line ends, quoting, line numbers, pieces read in parallel, and
//! the messages for files that cannot be read.

use std::path::Path;

use super::{PATH, assert_mentions, read_error, table};
use crate::table::error;
use crate::table::number;
use crate::table::read::{Table, check_size};
use crate::table::rows::split_rows;

#[test]
fn detects_the_delimiter_from_the_header_line() {
    for (text, delimiter) in [("a,b;c\n1,2;3\n", ','), ("a;b;c,d\n1;2;3,4\n", ';'), ("a\tb\tc;d\n1\t2\t3;4\n", '\t')] {
        let t = table(text);
        assert_eq!(t.header().len(), if delimiter == ',' { 2 } else { 3 }, "{text:?}");
        assert_eq!(t.field(0, 0), "1", "{text:?}");
    }
    let t = table("abc\nx\n");
    assert_eq!((t.header(), t.field(0, 0)), (&["abc".to_string()][..], "x"));
}

#[test]
fn an_explicit_delimiter_overrides_detection() {
    let t = Table::from_bytes(Path::new(PATH), b"a;b,c\n1;2,3\n", Some(b',')).unwrap();
    assert_eq!(t.header(), ["a;b", "c"]);
    assert_eq!(t.field(0, 1), "3");
}

#[test]
fn reads_bom_crlf_and_trims_fields() {
    let t = table("\u{feff} a , b \r\n x y ,1\r\n2,  \r\n");
    assert_eq!(t.header(), ["a", "b"]);
    assert_eq!((t.len(), t.field(0, 0), t.field(0, 1), t.field(1, 1)), (2, "x y", "1", ""));
    assert_eq!((t.line(0), t.line(1)), (2, 3));
    assert!(!t.is_empty());
}

#[test]
fn quoted_fields_keep_commas_and_lines_count_their_newlines() {
    let t = table("name,n\n\"Smith, J\",1\n\"two\nlines\",2\n\"say \"\"hi\"\"\",3\n");
    assert_eq!(t.field(0, 0), "Smith, J");
    assert_eq!(t.field(1, 0), "two\nlines");
    assert_eq!(t.field(2, 0), "say \"hi\"");
    assert_eq!((t.line(0), t.line(1), t.line(2)), (2, 3, 5));
    let t = table("name,n\r\n\"two\r\nlines\",2\r\n\r\n3,4\r\n");
    assert_eq!((t.field(0, 0), t.field(1, 0)), ("two\r\nlines", "3"));
    assert_eq!((t.line(0), t.line(1)), (2, 5));
}

#[test]
fn carriage_returns_alone_end_rows_too() {
    let t = table("a,b\r1,2\r3,4\r");
    assert_eq!((t.len(), t.field(0, 1), t.field(1, 0)), (2, "2", "3"));
}

#[test]
fn blank_lines_are_skipped_but_counted() {
    let t = table("\n\na,b\n1,2\n\n\n3,4\n");
    assert_eq!((t.len(), t.line(0), t.line(1)), (2, 4, 7));
    assert_mentions(&read_error(b"\r\na,a\r\n1,2\r\n"), &["line 2", "column \"a\""]);
    assert_mentions(&read_error(b"a,b\r\n1,2\r\n3\r\n"), &["line 3", "has 1 fields"]);
}

#[test]
fn reading_in_parallel_pieces_gives_the_same_table() {
    let mut text = String::from("id,name,x\r\n");
    for i in 0..500 {
        text.push_str(&format!("{i}, n{} ,{}.5\r\n", i % 7, i * 3));
        if i % 97 == 0 {
            text.push_str("\r\n");
        }
    }
    let whole = Table::parse(Path::new(PATH), text.clone().into_bytes(), None, None).unwrap();
    let pieces = Table::parse(Path::new(PATH), text.clone().into_bytes(), None, Some(100)).unwrap();
    assert!(split_rows(&text.as_bytes()[12..], 100).len() > 50);
    assert_eq!((whole.len(), pieces.len()), (500, 500));
    for row in 0..500 {
        let fields = |t: &Table| (0..3).map(|c| t.field(row, c).to_owned()).collect::<Vec<_>>();
        assert_eq!((fields(&pieces), pieces.line(row)), (fields(&whole), whole.line(row)), "row {row}");
    }
    assert_eq!((pieces.line(0), pieces.line(1), pieces.line(499)), (2, 4, 507));
    // A ragged row deep in the file is reported at its own line.
    let ragged = text.replace("\r\n400, n1 ,1200.5\r\n", "\r\n400, n1\r\n");
    let message = Table::parse(Path::new(PATH), ragged.into_bytes(), None, Some(100)).unwrap_err().to_string();
    assert_mentions(&message, &["line 407", "has 2 fields"]);
}

#[test]
fn a_quote_anywhere_reads_the_file_with_the_csv_crate() {
    let text = "a,b\n1,2\n\"x\ny\",3\n4,5\n";
    assert!(split_rows(text.as_bytes(), 2).len() > 1);
    let t = Table::parse(Path::new(PATH), text.as_bytes().to_vec(), None, Some(2)).unwrap();
    assert_eq!((t.len(), t.field(1, 0), t.line(2)), (3, "x\ny", 5));
}

#[test]
fn reads_a_real_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("houses.csv");
    std::fs::write(&path, "rooms;price\n3;100\n4;150\n").unwrap();
    let t = Table::read(&path, None).unwrap();
    assert_eq!((t.path(), t.len(), t.field(1, 1)), (path.as_path(), 2, "150"));
    let missing = dir.path().join("nope.csv");
    let message = Table::read(&missing, None).unwrap_err().to_string();
    assert_mentions(&message, &["nope.csv", "cannot read"]);
}

#[test]
fn an_empty_file_is_refused() {
    for text in [&b""[..], b"\xEF\xBB\xBF", b"\n\n"] {
        assert_mentions(&read_error(text), &[PATH, "is empty", "header row and at least one data row"]);
    }
}

#[test]
fn a_header_without_rows_is_refused() {
    assert_mentions(&read_error(b"a,b\n"), &[PATH, "has a header row but no data rows"]);
}

#[test]
fn duplicate_column_names_name_both_positions() {
    let message = read_error(b"a,b,a\n1,2,3\n");
    assert_mentions(&message, &[PATH, "line 1", "column \"a\"", "columns 1 and 3"]);
}

#[test]
fn an_empty_header_name_is_refused() {
    assert_mentions(&read_error(b"a,b,\n1,2,3\n"), &[PATH, "line 1", "column 3 of the header is empty"]);
}

#[test]
fn a_ragged_row_names_its_line_and_field_counts() {
    let message = read_error(b"a,b\n1,2\n3,4,5\n");
    assert_mentions(&message, &[PATH, "line 3", "has 3 fields, the header has 2", "\",\""]);
}

#[test]
fn invalid_utf8_names_its_line() {
    let message = read_error(b"a,b\n1,2\n3,\xff\n");
    assert_mentions(&message, &[PATH, "line 3", "not valid UTF-8"]);
}

#[test]
fn a_delimiter_that_cannot_split_is_refused() {
    for delimiter in [b'"', b'\n', b'5', b'x', b'.', b'-', 0xE9] {
        let message = Table::from_bytes(Path::new(PATH), b"a\n1\n", Some(delimiter)).unwrap_err().to_string();
        assert_mentions(&message, &[PATH, "data_loader.args.delimiter"]);
    }
    assert!(Table::from_bytes(Path::new(PATH), b"a|b\n1|2\n", Some(b'|')).is_ok());
}

#[test]
fn a_file_beyond_u32_offsets_is_refused() {
    assert!(check_size(Path::new(PATH), u32::MAX as usize).is_ok());
    let message = check_size(Path::new(PATH), u32::MAX as usize + 1).unwrap_err().to_string();
    assert_mentions(&message, &[PATH, "4 GiB", "split it"]);
}

#[test]
fn column_lookup_lists_the_header_when_absent() {
    let t = table("age,city\n1,x\n");
    assert_eq!(t.column("city").unwrap(), 1);
    assert_mentions(&t.column("town").unwrap_err().to_string(), &[PATH, "\"town\"", "\"age\", \"city\""]);
}

#[test]
fn select_keeps_the_rows_in_the_given_order_with_their_lines() {
    let t = table("a,b\n1,x\n22,yy\n333,zzz\n");
    let s = t.select(&[2, 0, 2]);
    assert_eq!(s.len(), 3);
    let rows: Vec<(&str, &str, u64)> = (0..3).map(|r| (s.field(r, 0), s.field(r, 1), s.line(r))).collect();
    assert_eq!(rows, [("333", "zzz", 4), ("1", "x", 2), ("333", "zzz", 4)]);
    assert!(t.select(&[]).is_empty());
}

#[test]
fn error_messages_read_file_line_column() {
    let e = error(Path::new("data/houses.csv"), Some(17), Some("rooms"), "\"abc\" is not a number");
    assert_eq!(e.to_string(), "data/houses.csv, line 17, column \"rooms\": \"abc\" is not a number");
    let e = error(Path::new("data/houses.csv"), None, None, "is empty");
    assert_eq!(e.to_string(), "data/houses.csv: is empty");
}

/// A small deterministic generator for the differential test below.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The splitter for files without quotes against the `csv` crate, on random files of fields that
/// are numbers in many forms, words, blanks and whitespace, with LF or CRLF (mixed), blank lines,
/// a missing last line end, every delimiter, pieces of every size, and ragged rows: the same
/// fields, numbers, lines and errors.
#[test]
fn the_plain_splitter_reads_what_the_csv_crate_reads() {
    const FIELDS: [&str; 20] = [
        "1",
        "-2.5",
        "1e3",
        " 3 ",
        "",
        "abc",
        "nan",
        "inf",
        "1e40",
        "  x y  ",
        "+.5",
        "5.",
        "0.000001",
        "-0",
        "12345678901234567890",
        "é",
        "1,5",
        "\t7",
        "--1",
        ".",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for case in 0..400 {
        let delimiter = [b',', b';', b'\t'][rng.below(3)];
        let columns = 1 + rng.below(4);
        let mut text = String::new();
        for j in 0..columns {
            if j > 0 {
                text.push(delimiter as char);
            }
            text.push_str(&format!("c{j}"));
        }
        let rows = 1 + rng.below(30);
        for row in 0..rows {
            text.push_str(if rng.below(3) == 0 { "\r\n" } else { "\n" });
            if rng.below(8) == 0 {
                text.push('\n');
            }
            // One row in forty is ragged.
            let fields = if rng.below(40) == 0 { columns + 1 } else { columns };
            for j in 0..fields {
                if j > 0 {
                    text.push(delimiter as char);
                }
                let field = FIELDS[rng.below(FIELDS.len())];
                // A field with the delimiter in it would be ragged: keep those for the ragged rows.
                if field.contains(delimiter as char) && fields == columns {
                    text.push('x');
                } else {
                    text.push_str(field);
                }
            }
            if row + 1 == rows && rng.below(2) == 0 {
                text.push('\n');
            }
        }
        let reference = Table::parse(Path::new(PATH), text.clone().into_bytes(), None, None);
        let chunk = 1 + rng.below(64);
        let plain = Table::parse(Path::new(PATH), text.clone().into_bytes(), None, Some(chunk));
        let (reference, plain) = match (reference, plain) {
            (Ok(r), Ok(p)) => (r, p),
            (Err(r), Err(p)) => {
                assert_eq!(p.to_string(), r.to_string(), "case {case}: {text:?}");
                continue;
            }
            (r, p) => {
                panic!("case {case}: {text:?}: the csv crate gives {r:?}, the splitter {p:?}")
            }
        };
        assert_eq!((plain.header(), plain.len()), (reference.header(), reference.len()), "case {case}");
        for row in 0..reference.len() {
            assert_eq!(plain.line(row), reference.line(row), "case {case} row {row}: {text:?}");
            for j in 0..columns {
                let field = reference.field(row, j);
                assert_eq!(plain.field(row, j), field, "case {case} row {row}: {text:?}");
                let expected = number::parse_number(field).map_or(f32::NAN, |x| x as f32);
                for t in [&plain, &reference] {
                    let x = t.number(row, j);
                    assert!(
                        x.to_bits() == expected.to_bits() || (x.is_nan() && expected.is_nan()),
                        "case {case} row {row}: {field:?} read as {x}, not {expected}"
                    );
                }
            }
        }
    }
}
