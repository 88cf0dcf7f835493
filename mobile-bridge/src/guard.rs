//! No panic crosses the FFI: every exported call runs inside [`guard`].

use crate::error::ApiError;

/// Runs `f`, turning a panic into `ApiError::Internal` (the panic message goes to the log
/// through the panic hook, never to the app).
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ApiError::internal()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 6: a panic inside a call becomes the public `Internal` error.
    #[test]
    fn a_panic_becomes_an_internal_error() {
        let r: Result<(), ApiError> = guard(|| panic!("a bug"));
        assert!(matches!(r, Err(ApiError::Internal { .. })), "{r:?}");
        assert_eq!(guard(|| Ok(7)).unwrap(), 7);
    }
}
