//! The one integration-test binary (one link step instead of one per file).

mod hostile;
mod support;
mod tidy;
mod verify;
