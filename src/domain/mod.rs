//! The vocabulary of tokenvault: what a customer, a customer token, a token event and a card
//! token are, which values are valid, and how lists are paged. Nothing here knows about HTTP or
//! SQL, so the same rules hold whichever way a request arrives and whichever store keeps it.

pub mod account;
pub mod audit;
pub mod card_token;
pub mod client;
pub mod clock;
pub mod customer;
pub mod customer_settings;
pub mod customer_token;
pub mod fault;
pub mod journal;
pub mod paging;
pub mod sealed;
pub mod session;
pub mod time;
pub mod token_event;
pub mod validation;
pub mod webhook;
pub mod webhook_target;

pub use account::AccountId;
pub use paging::{Page, PageRequest};
pub use time::Timestamp;
pub use validation::{FieldError, ValidationError};
