//! Places counted in all and per client address, so that one address cannot take them all: the
//! connections the server holds (`http::server`) and the requests it runs at once
//! (`http::request_limits`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// At most `max_total` places in all and `max_per_address` for one address.
pub struct Places {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Which bound a refused place met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    PerAddress,
}

/// One place taken; given back when dropped.
pub struct Place {
    places: Arc<Places>,
    address: Option<IpAddr>,
}

impl Places {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_address: max_per_address.max(1),
            counts: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.counts.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// A place for `address` (counted in all only when the address is unknown).
    pub fn enter(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Place, Full> {
        let mut counts = self.lock();
        let (total, per_address) = &mut *counts;
        if *total >= self.max_total {
            return Err(Full::Total);
        }
        if let Some(address) = address {
            let count = per_address.entry(address).or_default();
            if *count >= self.max_per_address {
                return Err(Full::PerAddress);
            }
            *count += 1;
        }
        *total += 1;
        Ok(Place { places: self.clone(), address })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.places.lock();
        let (total, per_address) = &mut *counts;
        *total -= 1;
        if let Some(address) = self.address {
            if let Some(count) = per_address.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    per_address.remove(&address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_share_and_all_get_no_more_than_the_total() {
        let places = Places::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let first = places.enter(Some(a)).unwrap();
        let _second = places.enter(Some(a)).unwrap();
        assert_eq!(places.enter(Some(a)).err(), Some(Full::PerAddress));
        let _third = places.enter(Some(b)).unwrap();
        assert_eq!(places.enter(None).err(), Some(Full::Total));
        drop(first);
        let again = places.enter(Some(a)).unwrap();
        drop(again);
        assert_eq!(places.lock().0, 2, "every dropped place is given back");
        drop(_second);
        assert_eq!(places.lock().1.get(&a), None, "an address with no place leaves no entry behind");
    }
}
