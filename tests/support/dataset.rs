//! A `tokenvault export` file made up for import tests: large enough for several batches, with a
//! foreign key and `seq` tables. Included with `#[path]` by `tests/cli.rs` and by the unit tests
//! of `src/service/transfer.rs`, which both import it.

#![allow(dead_code)] // each test crate uses its part

use serde_json::{json, Value};

/// Where the test account's rows go.
const ACCOUNT: &str = "T00000001";

/// What [`export_text`] writes: 2 clients, `customers` customers and a token for each of the first
/// `tokens` customers (`seq` 1, 2, … in both tables).
pub struct Export {
    pub customers: u64,
    pub tokens: u64,
    /// The header's count of tokens (`tokens` for a file that matches it).
    pub claimed_tokens: u64,
    /// A line that is not JSON follows this many token lines.
    pub broken_after_tokens: Option<u64>,
}

impl Export {
    /// A correct file of this size.
    pub fn correct(customers: u64, tokens: u64) -> Self {
        Self { customers, tokens, claimed_tokens: tokens, broken_after_tokens: None }
    }

    /// The header's counts as `import` prints them, in the export's table order.
    pub fn counts(&self) -> Value {
        json!({"clients": 2, "customers": self.customers, "customer_tokens": self.claimed_tokens})
    }

    pub fn text(&self) -> String {
        let header = json!({
            "format": "tokenvault-export",
            "version": 1,
            "schema_version": 1,
            "source": "sqlite",
            "exported_at": "2024-01-01T00:00:00Z",
            "tables": self.counts(),
        });
        let mut text = format!("{header}\n");
        let line = |text: &mut String, table: &str, row: Value| {
            text.push_str(&format!("{}\n", json!({"table": table, "row": row})));
        };
        for client in ["c1", "c2"] {
            line(
                &mut text,
                "clients",
                json!({"client_id": client, "account_id": ACCOUNT, "secret_hash": "h", "scopes": "s", "created_at": 1}),
            );
        }
        for seq in 1..=self.customers {
            line(
                &mut text,
                "customers",
                json!({"seq": seq, "id": format!("cus-{seq}"), "account_id": ACCOUNT, "customer_id": format!("c{seq}"),
                       "customer_type": "individual", "attributes": "{}", "created_at": seq, "created_by": "t",
                       "updated_at": seq}),
            );
        }
        for seq in 1..=self.tokens {
            line(
                &mut text,
                "customer_tokens",
                json!({"seq": seq, "id": format!("tok-{seq}"), "account_id": ACCOUNT, "customer_seq": seq,
                       "token_id": "t", "token_type": "email", "value": format!("v{seq}@example.com"),
                       "created_at": seq, "created_by": "t", "updated_at": seq}),
            );
            if self.broken_after_tokens == Some(seq) {
                text.push_str("{\"table\": \"customer_tokens\", \"row\": \n");
            }
        }
        text
    }
}
