//! API-key check: when a key is configured (`--api-key` / `GLIMPSE_API_KEY`), requests
//! must carry `Authorization: Bearer <key>`. Compared in constant time so response
//! timing does not reveal how much of a guess was right.

/// Whether the `Authorization` header satisfies the configured key (`None` = open server).
pub fn is_authorized(expected_key: Option<&str>, authorization: Option<&str>) -> bool {
    let Some(expected) = expected_key else {
        return true;
    };
    let Some(token) = authorization.and_then(bearer_token) else {
        return false;
    };
    constant_time_eq(token.as_bytes(), expected.as_bytes())
}

fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_key_passes() {
        assert!(is_authorized(None, None));
        assert!(is_authorized(Some("s3cret"), Some("Bearer s3cret")));
        assert!(is_authorized(Some("s3cret"), Some("bearer  s3cret ")));
        for header in [
            None,
            Some("Bearer nope"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
            Some("s3cret"),
            Some("Bearer "),
        ] {
            assert!(!is_authorized(Some("s3cret"), header), "{header:?}");
        }
    }
}
