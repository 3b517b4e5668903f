//! The warehouse's stock in compact form, and which of its products the price
//! list has named.

use std::collections::HashSet;

/// The stock as `(product id, balance)` pairs, 16 bytes a product (a hash
/// map of the same pairs took several times that). Pairs are pushed in
/// arrival order; once the stock is complete, [`seal`](Self::seal) sorts them
/// by id, after which balances are found by binary search and price-list ids
/// are [`claim`](Self::claim)ed: one bit per stock entry, and a hash set only
/// for the ids that have no stock.
#[derive(Default)]
pub(crate) struct StockTable {
    /// In arrival order until sealed, then sorted by product id.
    entries: Vec<(u64, i64)>,
    sealed: bool,
    /// One bit per (sorted) entry, set once a price-list item named its product.
    claimed: Vec<u64>,
    /// The price-list ids that have no stock entry.
    unstocked: HashSet<u64>,
}

impl StockTable {
    /// Adds one stock item; duplicates are found by [`seal`](Self::seal).
    pub(crate) fn push(&mut self, id: u64, balance: i64) {
        debug_assert!(!self.sealed, "stock pushed after it was sealed");
        self.entries.push((id, balance));
    }

    /// Ends the stock: sorts it by product id and refuses a product that
    /// occurs more than once, returning its id. When several products do,
    /// the one named is the smallest id (sorting loses the input order).
    /// Does nothing once it has succeeded; after a failure it fails again.
    pub(crate) fn seal(&mut self) -> Result<(), u64> {
        if self.sealed {
            return Ok(());
        }
        // Release the growth slack: shrinking a block in place copies nothing
        // (as dlmalloc, the wasm32-wasip2 allocator, and glibc both do). The
        // sort is in place: a stable one would take a scratch buffer of half
        // the entries, and a repeated id is an error whatever its order.
        self.entries.shrink_to_fit();
        self.entries.sort_unstable_by_key(|&(id, _)| id);
        if let Some(pair) = self.entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(pair[0].0);
        }
        self.claimed = vec![0; self.entries.len().div_ceil(64)];
        self.sealed = true;
        Ok(())
    }

    /// The balance of `id`, 0 when it has no stock entry.
    pub(crate) fn balance(&self, id: u64) -> i64 {
        self.find(id).map_or(0, |index| self.entries[index].1)
    }

    /// Records that a price-list item names `id`; false when one did before.
    pub(crate) fn claim(&mut self, id: u64) -> bool {
        match self.find(id) {
            Some(index) => {
                let (word, bit) = (index / 64, 1u64 << (index % 64));
                let first = self.claimed[word] & bit == 0;
                self.claimed[word] |= bit;
                first
            }
            None => self.unstocked.insert(id),
        }
    }

    /// The stock entries that no price-list item named.
    pub(crate) fn unclaimed(&self) -> u64 {
        let claimed: u64 = self.claimed.iter().map(|w| u64::from(w.count_ones())).sum();
        self.entries.len() as u64 - claimed
    }

    /// The index of `id`'s entry, if it has one.
    fn find(&self, id: u64) -> Option<usize> {
        debug_assert!(self.sealed, "stock looked up before it was sealed");
        self.entries
            .binary_search_by_key(&id, |&(entry, _)| entry)
            .ok()
    }
}
