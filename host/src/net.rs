//! What the job's HTTP clients (Bitcram, Secret Manager) share: one TLS
//! stack, and an error's causes written on one line.

use std::error::Error;

/// Installs rustls' `ring` provider as the process's TLS crypto provider:
/// one TLS stack for Bitcram, Secret Manager and the database. Idempotent;
/// a provider installed earlier stays.
pub fn install_tls_provider() {
    // Err only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `head`, then the text of each cause from `cause` down, as `clean` writes
/// it, joined with `: `; a cause whose text the line already holds is left
/// out (HTTP and Google libraries often repeat their sources' messages).
pub fn join_causes(
    head: String,
    mut cause: Option<&(dyn Error + 'static)>,
    clean: impl Fn(String) -> String,
) -> String {
    let mut line = head;
    while let Some(error) = cause {
        let text = clean(error.to_string());
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = error.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn causes_join_on_one_line_without_repeats() {
        let error = Layer(
            "request failed: connection refused",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("os error 111", None))),
            ))),
        );
        assert_eq!(
            join_causes(error.to_string(), error.source(), |t| t),
            "request failed: connection refused: os error 111"
        );
    }
}
