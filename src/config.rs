//! Typed settings with their defaults, shared by the command line and the tests.

/// Hides the password of a database URL so it can be printed or logged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact_url("postgres://u:secret@db:5432/tv"), "postgres://u:****@db:5432/tv");
        assert_eq!(redact_url("postgres://u@db/tv"), "postgres://u@db/tv");
        assert_eq!(redact_url("sqlite://tokenvault.db"), "sqlite://tokenvault.db");
    }
}
