//! Matching a request against an endpoint pattern.
//!
//! The rule (X-Road's, from its `PathGlob`): in a path pattern `*` matches any run of
//! characters, possibly empty, *within one segment* (never `/`), and `**` matches any run of
//! characters *across segments* (`/` included); every other character matches itself, case
//! sensitively. The whole path must match. So `/persons/*` matches `/persons/123` and
//! `/persons/` but not `/persons/123/address`; `/persons/**` matches all three, and
//! `/persons/*/address` matches `/persons/123/address`. The method pattern `*` matches any
//! method; otherwise methods compare exactly.
//!
//! A request path that could be read differently by the backend never matches: one with a
//! `.` or `..` segment (also percent-encoded), or an encoded `/` or `\` (`%2F`, `%5C`), or a
//! `\`. Otherwise `/public/**` would open `/public/../admin`. Such requests are allowed only
//! by a whole-service grant. The path is the one the client sent after the service code,
//! still percent-encoded, without the query.

use lienthong_model::gateway::Endpoint;

/// Does `endpoint` admit a request with this method and path?
pub fn endpoint_matches(endpoint: &Endpoint, method: &str, path: &str) -> bool {
    method_matches(&endpoint.method, method)
        && !is_ambiguous(path)
        && path_matches(&endpoint.path, path)
}

/// Does the method pattern (`*` or a method) admit `method`?
pub fn method_matches(pattern: &str, method: &str) -> bool {
    pattern == "*" || pattern == method
}

#[derive(Clone, Copy)]
enum Token {
    Byte(u8),
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run.
    DoubleStar,
}

fn tokens(pattern: &str) -> Vec<Token> {
    let bytes = pattern.as_bytes();
    let mut tokens = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            if bytes.get(i + 1) == Some(&b'*') {
                tokens.push(Token::DoubleStar);
                i += 2;
            } else {
                tokens.push(Token::Star);
                i += 1;
            }
        } else {
            tokens.push(Token::Byte(bytes[i]));
            i += 1;
        }
    }
    tokens
}

/// Whole-path glob match. Dynamic programming over (pattern token, path position), so the
/// cost is O(pattern × path) whatever the stars: no backtracking blow-up.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let path = path.as_bytes();
    // matched[j]: the pattern tokens seen so far match path[..j].
    let mut matched = vec![false; path.len() + 1];
    matched[0] = true;
    let mut next = vec![false; path.len() + 1];
    for token in tokens(pattern) {
        match token {
            Token::Byte(byte) => {
                next[0] = false;
                for j in 0..path.len() {
                    next[j + 1] = matched[j] && path[j] == byte;
                }
            }
            Token::Star => {
                next[0] = matched[0];
                for j in 0..path.len() {
                    next[j + 1] = matched[j + 1] || (next[j] && path[j] != b'/');
                }
            }
            Token::DoubleStar => {
                next[0] = matched[0];
                for j in 0..path.len() {
                    next[j + 1] = matched[j + 1] || next[j];
                }
            }
        }
        std::mem::swap(&mut matched, &mut next);
        if !matched.contains(&true) {
            return false;
        }
    }
    matched[path.len()]
}

/// A path the backend might resolve to somewhere else than it reads.
fn is_ambiguous(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return true;
    }
    lower
        .split('/')
        .map(|segment| segment.replace("%2e", "."))
        .any(|segment| segment == "." || segment == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_within_a_segment() {
        assert!(path_matches("/persons/*", "/persons/123"));
        assert!(path_matches("/persons/*", "/persons/"));
        assert!(!path_matches("/persons/*", "/persons/123/address"));
        assert!(!path_matches("/persons/*", "/persons"));
        assert!(path_matches("/persons/*/address", "/persons/123/address"));
        assert!(!path_matches("/persons/*/address", "/persons/1/2/address"));
        assert!(path_matches("/files/*.json", "/files/a.json"));
        assert!(!path_matches("/files/*.json", "/files/a.xml"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(path_matches("/persons/**", "/persons/123/address"));
        assert!(path_matches("/persons/**", "/persons/"));
        assert!(path_matches("/**", "/"));
        assert!(path_matches("**", ""));
        assert!(path_matches("/**/bar/**", "/a/b/bar/e/f"));
        assert!(!path_matches("/**/bar/**", "/a/b/foo/e/f"));
        assert!(path_matches("***", "/anything/at/all"));
    }

    #[test]
    fn literals_are_exact() {
        assert!(path_matches("/a", "/a"));
        assert!(!path_matches("/a", "/A"));
        assert!(!path_matches("/a", "/ab"));
        assert!(!path_matches("/ab", "/a"));
        assert!(path_matches("", ""));
        assert!(!path_matches("", "/"));
        assert!(path_matches("/.^$+{[]|()", "/.^$+{[]|()"));
    }

    #[test]
    fn many_stars_stay_cheap() {
        let pattern = "/*".repeat(200) + "x";
        let path = "/a".repeat(5000);
        assert!(!path_matches(&pattern, &path));
        let pattern = "**a".repeat(300);
        assert!(!path_matches(&pattern, &"a".repeat(299)));
    }

    #[test]
    fn methods() {
        assert!(method_matches("*", "DELETE"));
        assert!(method_matches("GET", "GET"));
        assert!(!method_matches("GET", "POST"));
        assert!(!method_matches("GET", "get"));
    }

    #[test]
    fn ambiguous_paths_never_match() {
        let public = Endpoint::new("*", "/public/**").expect("endpoint");
        assert!(endpoint_matches(&public, "GET", "/public/a/b"));
        for path in [
            "/public/../admin",
            "/public/%2e%2E/admin",
            "/public/.%2e/admin",
            "/public/./x",
            "/public/a%2Fb",
            "/public/a%5cb",
            "/public/a\\b",
            "public/x",
        ] {
            assert!(!endpoint_matches(&public, "GET", path), "{path} matched");
        }
        // Dots inside a segment are ordinary characters.
        assert!(endpoint_matches(&public, "GET", "/public/a..b/.well-known"));
    }
}
