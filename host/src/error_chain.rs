//! One line for an error and all its causes (`a: b: c`), for messages where the useful part,
//! such as "connection refused", sits several sources down (reqwest, the AWS SDK).

/// `err` followed by each of its sources, joined with `": "`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Like [`error_chain`], but a cause whose text is already in the message is left out: an error
/// that shows its source in its own text (`#[error("cannot start: {0}")]` with `#[from]`) would
/// otherwise print it twice (`cannot start: bad token: bad token`). What the CLI prints.
pub fn distinct_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("token 'ci': sha256 must be 64 hex digits")]
        struct Bad;
        #[derive(Debug, thiserror::Error)]
        #[error("cannot start the job service: {0}")]
        struct Start(#[from] Bad);
        #[derive(Debug, thiserror::Error)]
        #[error("serve")]
        struct Outer(#[source] Start);
        let err = Outer(Start(Bad));
        assert_eq!(
            super::error_chain(&err),
            "serve: cannot start the job service: token 'ci': sha256 must be 64 hex digits: \
             token 'ci': sha256 must be 64 hex digits"
        );
        assert_eq!(
            super::distinct_chain(&err),
            "serve: cannot start the job service: token 'ci': sha256 must be 64 hex digits"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let anyhow = anyhow::Error::new(io).context("reading job.wasm");
        assert_eq!(
            super::distinct_chain(anyhow.as_ref()),
            "reading job.wasm: no such file"
        );
    }

    #[test]
    fn joins_every_cause() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(Wrapped(inner));
        assert_eq!(
            super::error_chain(&Wrapped(outer)),
            "wrapped: wrapped: refused"
        );
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
