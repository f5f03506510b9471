//! OAuth subscription accounts: the refresh engine every OAuth provider shares ([`engine`]),
//! what differs per provider ([`grant`]), token JSON helpers ([`token`]) and the background
//! refresher ([`refresher`]).

pub mod engine;
pub mod grant;
pub mod refresher;
pub mod token;

pub use engine::{EngineOptions, Token, TokenEngine, TokenError, TokenRequest};
pub use grant::{GrantCtx, RefreshError, TokenGrant};
