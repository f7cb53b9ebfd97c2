//! Which database a process works on, parsed once from its URL: every command and the server
//! then agree on what `sqlite://…` and `postgres://…` mean, and nothing prints a password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// `sqlite://PATH` (relative, or absolute with a third slash; `sqlite:PATH` too, and a `?…` query
/// is ignored) or `postgres://…` / `postgresql://…` (passed on to the driver as written).
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite { url: String, path: PathBuf },
    Postgres(String),
}

/// A URL that names neither backend; the text says what was expected (password hidden).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is neither sqlite://PATH nor postgres://…", redact_url(.0))]
pub struct UnsupportedUrl(pub String);

impl FromStr for DatabaseUrl {
    type Err = UnsupportedUrl;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
        let path = rest.map(|rest| rest.split('?').next().unwrap_or(rest)).filter(|path| !path.is_empty());
        match path {
            Some(path) => Ok(Self::Sqlite { url: url.to_owned(), path: PathBuf::from(path) }),
            None => Err(UnsupportedUrl(url.to_owned())),
        }
    }
}

impl DatabaseUrl {
    /// The URL as given, password included: for connecting only, never for printing.
    pub fn expose(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres(url) => url,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The file of an embedded database.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite { path, .. } => Some(path),
            Self::Postgres(_) => None,
        }
    }

    /// Where an embedded database keeps its generated master key: `<database file>.key`.
    pub fn sqlite_key_file(&self) -> Option<PathBuf> {
        self.sqlite_path().map(|path| {
            let mut name = path.as_os_str().to_owned();
            name.push(".key");
            PathBuf::from(name)
        })
    }
}

/// Printed with the password hidden.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(self.expose()))
    }
}

/// Hides the password of a URL so it can be printed or logged.
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

    fn parse(url: &str) -> DatabaseUrl {
        url.parse().unwrap()
    }

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact_url("postgres://u:secret@db:5432/tv"), "postgres://u:****@db:5432/tv");
        assert_eq!(redact_url("postgres://u@db/tv"), "postgres://u@db/tv");
        assert_eq!(redact_url("sqlite://tokenvault.db"), "sqlite://tokenvault.db");
        let url = parse("postgres://u:secret@db/tv");
        assert_eq!(url.to_string(), "postgres://u:****@db/tv");
        assert_eq!(format!("{url:?}"), "\"postgres://u:****@db/tv\"");
        assert_eq!(url.expose(), "postgres://u:secret@db/tv");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(parse("sqlite://tokenvault.db").sqlite_path(), Some(Path::new("tokenvault.db")));
        assert_eq!(parse("sqlite:///var/lib/tv.db?mode=rwc").sqlite_path(), Some(Path::new("/var/lib/tv.db")));
        assert_eq!(parse("postgres://db/tv").sqlite_path(), None);
        assert!(parse("postgresql://db/tv").is_postgres());
        assert_eq!(parse("sqlite:///tmp/a.db").sqlite_key_file(), Some(PathBuf::from("/tmp/a.db.key")));
        assert_eq!(
            "mysql://u:pw@x".parse::<DatabaseUrl>().unwrap_err().to_string(),
            "mysql://u:****@x is neither sqlite://PATH nor postgres://…"
        );
    }
}
