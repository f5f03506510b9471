//! The server-side scripts. Each is loaded once and called by SHA (`EVALSHA`); the redis crate
//! reloads a script when the server answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).

use redis::Script;

macro_rules! with_json_prelude {
    ($file:literal) => {
        concat!(include_str!("lua/json.lua"), "\n", include_str!($file))
    };
}

pub struct Scripts {
    pub batch: Script,
    pub token: Script,
    pub lock: Script,
    pub replace_pool: Script,
    pub drop_pool: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            batch: Script::new(with_json_prelude!("lua/batch.lua")),
            token: Script::new(with_json_prelude!("lua/token.lua")),
            lock: Script::new(include_str!("lua/lock.lua")),
            replace_pool: Script::new(include_str!("lua/replace_pool.lua")),
            drop_pool: Script::new(include_str!("lua/drop_pool.lua")),
        }
    }
}
