//! Events to the user's app: each status change becomes a signed JSON POST to the call's
//! `webhook_url`, delivered from the database with retries. `signing` and `target` are pure;
//! `deliverer` is the I/O loop.

pub mod deliverer;
pub mod post;
pub mod signing;
pub mod target;
