//! HTTP basic authentication with ONTAP's two built-in kinds of role: `readonly` (GET and
//! HEAD) and `admin` (everything).
//!
//! Users are `user:role:password` lines (`#` comments and blank lines skipped), from a file
//! (`--users FILE`) or the variable `APPLIANCE_USERS`. Only a SHA-256 digest of each password
//! is kept in memory, compared in constant time; neither the lines nor the `Authorization`
//! header are ever logged (the log names the user only). A request without credentials, or
//! with wrong ones, answers `401` with `WWW-Authenticate: Basic realm="appliance"`; a
//! read-only user's write answers `403`; both with the error envelope.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jobstate_std::http::{ApiError, ErrorCode};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// GET and HEAD only.
    ReadOnly,
    /// Everything.
    Admin,
}

impl Role {
    fn parse(text: &str) -> Option<Role> {
        match text {
            "readonly" => Some(Role::ReadOnly),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether the role allows `method`.
    pub fn allows(self, method: &Method) -> bool {
        self == Role::Admin || method == Method::GET || method == Method::HEAD
    }
}

/// The authenticated user of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The name.
    pub name: Arc<str>,
    /// The role.
    pub role: Role,
}

struct Entry {
    name: Arc<str>,
    role: Role,
    digest: [u8; 32],
}

/// The users.
#[derive(Clone)]
pub struct Users(Arc<HashMap<String, Entry>>);

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Users").field(&names).finish()
    }
}

fn digest(password: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, password);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equal in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Users {
    /// Parse `user:role:password` lines. The error names the line, never its text.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, ':');
            let (Some(name), Some(role), Some(password)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("users line {}: expected user:role:password", n + 1));
            };
            let Some(role) = Role::parse(role) else {
                return Err(format!(
                    "users line {}: the role is admin or readonly",
                    n + 1
                ));
            };
            if name.is_empty() || password.is_empty() {
                return Err(format!("users line {}: empty user or password", n + 1));
            }
            let entry = Entry {
                name: Arc::from(name),
                role,
                digest: digest(password.as_bytes()),
            };
            if users.insert(name.to_owned(), entry).is_some() {
                return Err(format!("users line {}: user {name} given twice", n + 1));
            }
        }
        if users.is_empty() {
            return Err("no users given".to_owned());
        }
        Ok(Users(Arc::new(users)))
    }

    /// The user these credentials name, if the password is right.
    pub fn check(&self, name: &str, password: &str) -> Option<User> {
        let given = digest(password.as_bytes());
        // Hash a password for an unknown user too, so the answer takes as long.
        let entry = self.0.get(name)?;
        same(&entry.digest, &given).then(|| User {
            name: entry.name.clone(),
            role: entry.role,
        })
    }

    /// The user of an `Authorization: Basic …` header value.
    pub fn authenticate(&self, value: &HeaderValue) -> Option<User> {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        let pair = std::str::from_utf8(&raw).ok()?;
        let (name, password) = pair.split_once(':')?;
        self.check(name, password)
    }
}

/// `401` with `WWW-Authenticate` and the envelope.
pub fn unauthorized() -> Response {
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
        "authentication required: HTTP basic with a user of this appliance",
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"appliance\", charset=\"UTF-8\""),
    );
    r
}

impl Users {
    /// Authenticate and authorize a request: its [`User`], or the refusal to send (401 with
    /// `WWW-Authenticate`, 403 for a role that does not allow the method).
    pub fn authorize(&self, req: &Request) -> Result<User, Box<Response>> {
        let user = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| self.authenticate(v));
        let Some(user) = user else {
            return Err(Box::new(unauthorized()));
        };
        if !user.role.allows(req.method()) {
            return Err(Box::new(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    format!(
                        "user {} has the readonly role: {} is not allowed",
                        user.name,
                        req.method()
                    ),
                )
                .into_response(),
            ));
        }
        Ok(user)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_check_and_roles() {
        let u = Users::parse("# users\nadmin:admin:pa:ss\n\nview:readonly:v\n").unwrap();
        assert_eq!(u.check("admin", "pa:ss").unwrap().role, Role::Admin);
        assert_eq!(u.check("view", "v").unwrap().role, Role::ReadOnly);
        assert!(u.check("admin", "pa").is_none());
        assert!(u.check("nobody", "v").is_none());
        let header = HeaderValue::from_static("Basic dmlldzp2"); // view:v
        assert_eq!(u.authenticate(&header).unwrap().name.as_ref(), "view");
        assert!(u
            .authenticate(&HeaderValue::from_static("Bearer dmlldzp2"))
            .is_none());
        assert!(u
            .authenticate(&HeaderValue::from_static("Basic !!"))
            .is_none());
        assert!(Role::ReadOnly.allows(&Method::GET) && !Role::ReadOnly.allows(&Method::PATCH));
    }

    #[test]
    fn errors_never_show_the_line() {
        for bad in [
            "admin:root:secret1",
            "admin-secret2",
            "admin:admin:",
            "a:admin:x\na:admin:y",
        ] {
            let e = Users::parse(bad).unwrap_err();
            assert!(!e.contains("secret"), "{e}");
        }
        assert!(!format!("{:?}", Users::parse("a:admin:secret3").unwrap()).contains("secret"));
    }
}
