//! Sets of product ids that stay small for a large catalog: the ids that
//! are decimal numbers written canonically (Bitcram's product ids, as the
//! default transform writes them) are held as 8-byte numbers in one vector
//! and sorted once, at the end; any other id is held as text. A million
//! numeric ids take 8 MB, where a set of strings took some 60 MB.
//!
//! A leaf: it imports no other module of the crate.

use std::collections::HashSet;

/// Ids added one at a time, with the first repeated one found at the end
/// (a repeated text id is found at once).
#[derive(Debug, Default)]
pub struct IdSet {
    numbers: Vec<u64>,
    texts: HashSet<Box<str>>,
    /// A text id added twice, the first one met.
    repeated_text: Option<Box<str>>,
}

impl IdSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id`. Returns false when `id` is a text id already added (a
    /// repeated numeric id shows only in [`repeated`](Self::repeated)).
    pub fn add(&mut self, id: &str) -> bool {
        if let Some(number) = canonical_number(id) {
            self.numbers.push(number);
            return true;
        }
        if self.texts.insert(id.into()) {
            return true;
        }
        self.repeated_text.get_or_insert_with(|| id.into());
        false
    }

    /// An id added more than once, if any: the first repeated text id, or
    /// else the smallest repeated number. Sorts the numbers (once; later
    /// calls find them sorted).
    pub fn repeated(&mut self) -> Option<String> {
        if let Some(text) = &self.repeated_text {
            return Some(text.to_string());
        }
        self.numbers.sort_unstable();
        self.numbers
            .windows(2)
            .find(|pair| pair[0] == pair[1])
            .map(|pair| pair[0].to_string())
    }
}

/// The ids a table held before a run, each struck off as a row of the run
/// names it: what remains are the rows the run removes. Numeric ids are
/// held sorted, with one bit each for struck.
#[derive(Debug, Default)]
pub struct IdTally {
    numbers: Vec<u64>,
    /// One bit per entry of `numbers`.
    struck: Vec<u64>,
    struck_numbers: u64,
    texts: HashSet<Box<str>>,
}

impl IdTally {
    /// Adds one id of the table; [`seal`](Self::seal) after the last.
    pub fn add(&mut self, id: &str) {
        match canonical_number(id) {
            Some(number) => self.numbers.push(number),
            None => {
                self.texts.insert(id.into());
            }
        }
    }

    /// Ends the adding: sorts the numbers.
    pub fn seal(&mut self) {
        self.numbers.sort_unstable();
        self.numbers.dedup();
        self.numbers.shrink_to_fit();
        self.struck = vec![0; self.numbers.len().div_ceil(64)];
    }

    /// Ids held.
    pub fn len(&self) -> u64 {
        self.numbers.len() as u64 + self.texts.len() as u64
    }

    /// Strikes `id` off, if the table held it.
    pub fn strike(&mut self, id: &str) {
        let Some(number) = canonical_number(id) else {
            self.texts.remove(id);
            return;
        };
        if let Ok(at) = self.numbers.binary_search(&number) {
            let (word, bit) = (at / 64, 1u64 << (at % 64));
            if self.struck[word] & bit == 0 {
                self.struck[word] |= bit;
                self.struck_numbers += 1;
            }
        }
    }

    /// Ids not struck off.
    pub fn remaining(&self) -> u64 {
        self.len() - self.struck_numbers
    }
}

/// `id` as a number, when it is one written canonically (digits only, no
/// leading zero, within `u64`), so that writing the number back gives `id`
/// again: `"0042"` and `"42 "` stay text.
fn canonical_number(id: &str) -> Option<u64> {
    let bytes = id.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    canonical.then(|| id.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_texts_are_told_apart_and_repeats_found() {
        let mut ids = IdSet::new();
        for id in [
            "42",
            "0042",
            "7",
            "x-1",
            "18446744073709551615",
            "18446744073709551616",
        ] {
            assert!(ids.add(id), "{id}");
        }
        assert_eq!(ids.repeated(), None);
        assert_eq!(ids.numbers.len(), 3, "42, 7 and u64::MAX are numbers");
        assert!(ids.add("0"));
        assert_eq!(ids.repeated(), None);

        // A numeric repeat shows at the end, the smallest first.
        assert!(ids.add("42"));
        assert!(ids.add("7"));
        assert_eq!(ids.repeated().as_deref(), Some("7"));

        // A text repeat shows at once, and wins.
        assert!(!ids.add("0042"));
        assert!(!ids.add("x-1"));
        assert_eq!(ids.repeated().as_deref(), Some("0042"));
    }

    #[test]
    fn a_tally_counts_the_ids_no_row_named() {
        let mut tally = IdTally::default();
        for id in ["10", "2", "0010", "abc", "7", "2"] {
            tally.add(id);
        }
        tally.seal();
        assert_eq!(tally.len(), 5, "2 once");
        for id in ["2", "2", "abc", "0010", "11", "xyz"] {
            tally.strike(id);
        }
        assert_eq!(tally.remaining(), 2, "10 and 7");
        tally.strike("10");
        tally.strike("7");
        assert_eq!(tally.remaining(), 0);
        assert_eq!(IdTally::default().remaining(), 0);
    }

    #[test]
    fn only_canonical_decimals_are_numbers() {
        for (id, number) in [
            ("0", Some(0)),
            ("10", Some(10)),
            ("01", None),
            ("+1", None),
            ("-1", None),
            (" 1", None),
            ("1.0", None),
            ("", None),
            ("١٢", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(canonical_number(id), number, "{id:?}");
        }
    }
}
