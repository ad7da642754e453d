//! The collector's one shared secret: agents, API clients and OTLP exporters
//! present it as `Authorization: Bearer <token>`.

/// Whether an `Authorization` header value carries `expected` as a bearer
/// token. The scheme is case-insensitive (RFC 9110 §11.1), the token is
/// compared in constant time.
///
/// ```
/// use lagscope_collector::auth::bearer_matches;
/// assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
/// assert!(bearer_matches(Some("bearer s3cret"), "s3cret"));
/// assert!(!bearer_matches(Some("Basic s3cret"), "s3cret"));
/// assert!(!bearer_matches(None, "s3cret"));
/// ```
pub fn bearer_matches(header: Option<&str>, expected: &str) -> bool {
    let Some((scheme, token)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && constant_time_eq(token.trim().as_bytes(), expected.as_bytes())
}

/// Why a token cannot be used, if it cannot: it must be printable ASCII
/// without spaces (what fits in a header and in `LAGSCOPE_TOKEN`).
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() || token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(format!(
            "the token {token:?} must be printable ASCII without spaces, and not empty"
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        for ok in ["Bearer t", "bearer t", "BEARER t", "  Bearer t  "] {
            assert!(bearer_matches(Some(ok), "t"), "{ok:?}");
        }
        for bad in ["Bearer", "Bearer tt", "Bearert", "Token t", ""] {
            assert!(!bearer_matches(Some(bad), "t"), "{bad:?}");
        }
    }

    #[test]
    fn blank_and_spaced_tokens_are_refused() {
        assert!(check_token(" ").is_err());
        assert!(check_token("").is_err());
        assert!(check_token("a b").is_err());
        assert!(check_token("s3cret-token").is_ok());
    }
}
