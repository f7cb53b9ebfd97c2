use super::validation::FieldError;

/// The documented bounds of `limit` on every list operation.
pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 100;

/// Where a keyset-paged list starts and how much of it to return. The cursor is the `id` of the
/// last item a client saw (`starting_after`); stores resolve it to their internal sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub starting_after: Option<String>,
    pub include_total: bool,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_LIMIT, starting_after: None, include_total: false }
    }
}

impl PageRequest {
    /// Parses `limit` as the docs define it: an integer 1..=100, never clamped.
    pub fn parse_limit(raw: Option<&str>) -> Result<u32, FieldError> {
        let Some(raw) = raw else { return Ok(DEFAULT_LIMIT) };
        match raw.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(FieldError::new("limit", "must be an integer between 1 and 100")),
        }
    }
}

/// One page of a list, oldest first. `has_more` says whether a next page exists, so the HTTP
/// layer can emit `paging-token` and `link` only when they lead somewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    pub total: Option<u64>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only proves that more
    /// follow and is dropped.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, total: Option<u64>) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Self { items: rows, has_more, total }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), has_more: self.has_more, total: self.total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_validated_not_clamped() {
        assert_eq!(PageRequest::parse_limit(None), Ok(10));
        assert_eq!(PageRequest::parse_limit(Some("1")), Ok(1));
        assert_eq!(PageRequest::parse_limit(Some("100")), Ok(100));
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(PageRequest::parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn overfetch_reveals_a_next_page() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, None);
        assert_eq!(page.items, vec![1, 2]);
        assert!(page.has_more);
        let last = Page::from_overfetch(vec![1, 2], 2, Some(2));
        assert!(!last.has_more);
    }
}
