//! The job service API under `/api/v1`: upload Wasm components and jobs, follow them in the queue,
//! fetch results, cancel. Authenticated with bearer tokens (`auth`); documented by an OpenAPI
//! document served at `/api/v1/openapi.json`.

pub mod auth;
mod config;
mod error;
pub mod format;
pub mod types;

pub use auth::{Authenticator, Caller, Role, TokenConfig};
pub use config::JobsConfig;
pub use error::ApiError;
